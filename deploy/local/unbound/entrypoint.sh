#!/bin/sh
# Entry point of the local stack's unbound: makes the DoT certificate on the
# first start, then runs unbound in the foreground.
#
# The certificate: a CA made here, whose key is thrown away once it has
# signed the one server certificate (for "unbound", the name dotproxy dials),
# so nothing else can ever be signed with it. ca.pem is what dotproxy trusts
# (DOTPROXY_TLS_CA_FILE); the server key is readable by unbound alone. All of
# it lives in the stack's tls volume, so a restart keeps the same certificate
# and dotproxy keeps trusting it; deploy/local/down.sh removes the volume,
# and the next start makes a new one. Ten years: it is never seen outside
# the machine's compose network, and renewing it would only break the trust
# of a dotproxy that is still running.
#
# LOCAL_RECURSION: "no" (default) answers dotproxy.test and refuses the
# rest; "yes" also resolves every other name from the root servers.
set -eu

TLS=/tls
NAME=unbound

make_certificate() {
	tmp=$(mktemp -d)
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 3650 \
		-subj "/CN=dotproxy local stack CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign" 2>/dev/null
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=$NAME" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
		"$NAME" >"$tmp/server.ext"
	openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
		-CAcreateserial -days 3650 -extfile "$tmp/server.ext" -out "$tmp/server.pem" 2>/dev/null
	# The key first and ca.pem last: a start cut short leaves ca.pem missing,
	# so the next start makes all three again.
	install -o unbound -g unbound -m 0600 "$tmp/server.key" "$TLS/server.key"
	install -m 0644 "$tmp/server.pem" "$TLS/server.pem"
	install -m 0644 "$tmp/ca.pem" "$TLS/ca.pem"
	rm -rf "$tmp"
	echo "made a DoT certificate for \"$NAME\": $(openssl x509 -in "$TLS/server.pem" -noout -subject -enddate | tr '\n' ' ')"
}

if [ ! -s "$TLS/ca.pem" ] || [ ! -s "$TLS/server.pem" ] || [ ! -s "$TLS/server.key" ]; then
	make_certificate
fi

case ${LOCAL_RECURSION:-no} in
no | yes) ;;
*)
	echo "LOCAL_RECURSION=\"$LOCAL_RECURSION\": want yes or no" >&2
	exit 2
	;;
esac
echo "recursion: ${LOCAL_RECURSION:-no} (LOCAL_RECURSION)"
exec unbound -d -p -c "/etc/unbound/dotproxy-local/recursion-${LOCAL_RECURSION:-no}.conf"
