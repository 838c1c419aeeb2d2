{
  "graphiteHost": "127.0.0.1",
  "graphitePort": 2003,
  "port": 8125,
  "flushInterval": 10000,
  "percentThreshold": [90, 99],
  "servers": [
    { "server": "./servers/udp", "address": "0.0.0.0", "port": 8125 }
  ]
}
