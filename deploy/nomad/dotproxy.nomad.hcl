# dotproxy as a Nomad service: two replicas on different nodes, each bound to
# port 53 of its node, checked with the binary's own health checks (ready
# and alive), draining for DOTPROXY_LAMEDUCK on stop, and
# sending metrics to the statsd/DogStatsD agent that runs on every node
# (for example the Datadog agent as a system job, or a host install,
# listening on the node's address at 8125/udp).
#
#   nomad job run deploy/nomad/dotproxy.nomad.hcl
#   nomad job run -var image_tag=v1.2.4 deploy/nomad/dotproxy.nomad.hcl   # upgrade
#   nomad job revert dotproxy <version>                                    # rollback

variable "image_tag" {
  type        = string
  default     = "v1.0.0"
  description = "dotproxy image tag to run"
}

variable "upstreams" {
  type        = string
  default     = "1.1.1.1:853,1.0.0.1:853,9.9.9.9:853"
  description = "DOTPROXY_UPSTREAMS: comma-separated host:port[#tls-name]"
}

variable "statsd_port" {
  type        = number
  default     = 8125
  description = "port of the node-local statsd agent"
}

job "dotproxy" {
  type = "service"

  update {
    max_parallel      = 1
    min_healthy_time  = "10s"
    healthy_deadline  = "2m"
    progress_deadline = "5m"
    auto_revert       = true
    canary            = 0
  }

  group "dotproxy" {
    count = 2

    # One replica per node: each owns its node's port 53.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "dns" {
        static = 53
        to     = 53
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    service {
      name = "dotproxy"
      port = "dns"
      tags = ["dns"]

      # Script checks run inside the task, so they ask the proxy exactly as
      # a client would; they need the Consul service provider.
      #
      # Readiness gates traffic: Consul lists the replica as passing, and a
      # deployment counts a new allocation healthy, only while it can answer
      # now (an upstream answers, and it is not draining). No restart: a
      # restart does not bring an upstream back.
      check {
        name     = "dotproxy ready"
        type     = "script"
        command  = "/dotproxy"
        args     = ["healthcheck", "-ready"]
        interval = "10s"
        timeout  = "6s"
      }

      # Liveness restarts a replica whose process no longer answers at all
      # (SERVFAIL still counts as an answer).
      check {
        name     = "dotproxy alive"
        type     = "script"
        command  = "/dotproxy"
        args     = ["healthcheck"]
        interval = "15s"
        timeout  = "6s"

        check_restart {
          limit = 3
          grace = "15s"
        }
      }
    }

    task "dotproxy" {
      driver = "docker"

      config {
        image = "ghcr.io/dotproxy/dotproxy:${var.image_tag}"
        ports = ["dns"]
        # Docker sets net.ipv4.ip_unprivileged_port_start=0 in the task's
        # network namespace, so the image's non-root user binds :53 with no
        # capability.
        cap_drop        = ["all"]
        readonly_rootfs = true
        security_opt    = ["no-new-privileges"]
      }

      env {
        DOTPROXY_UPSTREAMS   = var.upstreams
        DOTPROXY_LISTEN      = ":53"
        DOTPROXY_STATSD_ADDR = "${attr.unique.network.ip-address}:${var.statsd_port}"
        DOTPROXY_LOG_LEVEL   = "info"
        DOTPROXY_LOG_FORMAT  = "json"
        # The drain: on SIGTERM dotproxy still answers for this long, for
        # clients that learnt this address before Consul dropped it, then
        # finishes what is in flight (DOTPROXY_QUERY_TIMEOUT, 4 s) and
        # exits within a second more.
        DOTPROXY_LAMEDUCK = "5s"
      }

      # Nomad removes the service from Consul, then signals at once: the
      # lameduck above does the draining, not shutdown_delay, so the two
      # never add up. kill_timeout covers lameduck + query timeout + 1 s
      # (10 s) with room to spare before SIGKILL.
      shutdown_delay = "0s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "15s"

      logs {
        max_files     = 5
        max_file_size = 10
      }

      resources {
        cpu    = 500
        memory = 128
      }
    }
  }
}
