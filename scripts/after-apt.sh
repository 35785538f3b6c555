#!/usr/bin/env bash
# After installing the test packages: the tests start their own slapd and samba on demand,
# so the system services the packages may have started are stopped (they would hold the
# ports Samba's AD needs, 389/636).
set -u
for svc in slapd samba-ad-dc smbd nmbd winbind; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
pkill -x slapd 2>/dev/null || true
pkill -x samba 2>/dev/null || true
exit 0
