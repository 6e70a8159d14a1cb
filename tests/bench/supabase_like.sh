#!/usr/bin/env bash
# A throwaway Supabase-like server on loopback for the benchmarks (issue #28, docs/benchmarks.md): PostgreSQL 15
# (Debian 12's postgresql-15) with pgvector built from source, the version production (Supabase) runs.
# A measurement set-up only, not part of CI. Needs root (apt, make install, runs the server as `postgres`).
#
#   tests/bench/supabase_like.sh build PGVECTOR_SRC          # make + make install against PG 15 (portable: no -march)
#   tests/bench/supabase_like.sh start DIR PORT [supabase|embedded]
#   tests/bench/supabase_like.sh url DIR                     # prints the admin URL (database postgres)
#   tests/bench/supabase_like.sh stop DIR                    # stops the server and removes DIR
#
# PGVECTOR_SRC: a pgvector source tree, e.g. from a clone: `git -C pgvector archive v0.8.0 | tar -x -C src`.
# `supabase`: the settings Supabase published for its Micro instance (1 GB; postgres config of its pgvector
# benchmarks, https://gist.github.com/egor-romanov/323e2847851bbd758081511785573c08), TCP on 127.0.0.1:PORT.
# `embedded`: initdb's defaults, as pgserver starts the embedded server (isa/core/embedded.py), and like it reached
# through a Unix socket in DIR (no TCP listener; PORT only names the socket).
# Then: .venv/bin/python tests/bench/bench_memory.py --url "$(tests/bench/supabase_like.sh url DIR)" ...
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
cmd=${1:?usage: build SRC | start DIR PORT [supabase|embedded] | url DIR | stop DIR}

case "$cmd" in
build)
    src=${2:?pgvector source dir}
    dpkg -s postgresql-server-dev-15 >/dev/null 2>&1 || apt-get install -y postgresql-server-dev-15 build-essential
    # OPTFLAGS="": pgvector's default adds -march=native; a portable build like a packaged one.
    make -C "$src" PG_CONFIG="$PGBIN/pg_config" OPTFLAGS="" -j2
    make -C "$src" PG_CONFIG="$PGBIN/pg_config" OPTFLAGS="" install
    grep default_version "$src/vector.control"
    ;;
start)
    dir=${2:?data dir (created)}
    port=${3:?port}
    profile=${4:-supabase}
    mkdir -p "$dir"
    chown postgres: "$dir"
    su postgres -c "$PGBIN/initdb -D '$dir/data' --auth=trust --encoding=utf8 -U postgres" >/dev/null
    conf="$dir/data/postgresql.conf"
    {
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        if [ "$profile" = supabase ]; then
            echo "listen_addresses = '127.0.0.1'"
            cat <<'EOF'
checkpoint_completion_target = 0.9
default_statistics_target = 100
effective_cache_size = '768MB'
effective_io_concurrency = 200
maintenance_work_mem = '64MB'
max_connections = 60
max_parallel_maintenance_workers = 1
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
max_wal_size = '4GB'
max_worker_processes = 4
min_wal_size = '1GB'
random_page_cost = 1.1
shared_buffers = '256MB'
wal_buffers = '7864kB'
work_mem = '3500kB'
EOF
        else
            echo "listen_addresses = ''"
        fi
    } >>"$conf"
    su postgres -c "$PGBIN/pg_ctl -D '$dir/data' -l '$dir/log' -w start" >/dev/null
    echo "$profile" >"$dir/profile"
    "$0" url "$dir"
    ;;
url)
    dir=${2:?data dir}
    port=$(sed -n 's/^port = //p' "$dir/data/postgresql.conf")
    if [ "$(cat "$dir/profile")" = supabase ]; then
        echo "postgresql://postgres@127.0.0.1:$port/postgres"
    else
        echo "postgresql://postgres@/postgres?host=$dir&port=$port"
    fi
    ;;
stop)
    dir=${2:?data dir}
    su postgres -c "$PGBIN/pg_ctl -D '$dir/data' -m fast -w stop" >/dev/null
    rm -rf "$dir"
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
