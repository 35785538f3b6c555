#!/bin/sh
# slapd in the foreground with the seed added online once (so memberOf is filled).
# SLAPD_RUN_DIR (database, pid), SLAPD_URL, SLAPD_ADMIN_PASSWORD; the defaults suit the image.
set -eu
here=$(dirname "$0")
run=${SLAPD_RUN_DIR:-/var/lib/slapd-local}
url=${SLAPD_URL:-ldap://0.0.0.0:1389/}
local_url=$(printf '%s' "$url" | sed 's#//0\.0\.0\.0:#//127.0.0.1:#')
admin_pw=${SLAPD_ADMIN_PASSWORD:-admin-local-only}
mkdir -p "$run/data"
rootpw=$(slappasswd -s "$admin_pw")
sed -e "s#@RUN_DIR@#$run#g" -e "s#@ROOTPW@#$rootpw#g" "$here/slapd.conf.in" > "$run/slapd.conf"

slapd -d 0 -f "$run/slapd.conf" -h "$url" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT

admin() { "$@" -x -H "$local_url" -D "cn=admin,dc=example,dc=org" -w "$admin_pw"; }
tries=0
until admin ldapwhoami >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then echo "slapd did not start" >&2; exit 1; fi
  sleep 0.1
done
if ! admin ldapsearch -b "dc=example,dc=org" -s base >/dev/null 2>&1; then
  admin ldapadd -f "$here/seed.ldif" >/dev/null
  echo "slapd: seeded from seed.ldif"
fi
echo "slapd: ready on $url"
wait "$pid"
