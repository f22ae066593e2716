#!/usr/bin/env bash
# Start Debian's PostgreSQL on 127.0.0.1 with a throwaway role that may create databases
# (each test makes its own), installing the server when it is missing. Prints the base URL.
# Usage: source .ci/postgres.sh   → exports MOVIEREC_TEST_POSTGRES
# The role's password is random, generated on the machine's first run and kept (readable by
# root and postgres only) so runs side by side share it; it must not be guessable from the
# URL (tests/test_postgres.py greps a sweep's store, logs and folders for it).
set -euo pipefail
ROLE=movierec_ci
PASSWORD_FILE=/var/lib/postgresql/.movierec_ci_password
if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi
VERSION="$(ls /etc/postgresql | sort -V | tail -1)"
pg_ctlcluster "$VERSION" main start 2>/dev/null || true  # already running is fine
for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
done
pg_isready -h 127.0.0.1 -p 5432
if [ ! -s "$PASSWORD_FILE" ]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16))' > "$PASSWORD_FILE")
    chown postgres "$PASSWORD_FILE"
fi
PASSWORD="$(cat "$PASSWORD_FILE")"
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE PASSWORD '$PASSWORD';
  END IF;
END \$\$;
SQL
export MOVIEREC_TEST_POSTGRES="postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:5432"
echo "PostgreSQL $VERSION on 127.0.0.1:5432, role $ROLE"
