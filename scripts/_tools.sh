# Sourced by scripts/test: the real tools the suite drives (PostgreSQL's initdb/pg_ctl,
# headless Chromium, wrk, Java for the Spark tests). On Debian as root, missing ones are
# installed; otherwise the tests that need them say what to install.
missing=()
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing from Debian: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]} (Debian packages); the tests that drive them will fail" >&2
  fi
fi
