#!/usr/bin/env bash
# The one entry point for building, running and testing mcpgateway without cargo-leptos.
#
#   scripts/dev.sh run [serve flags…]   build everything (release) and start the gateway
#   scripts/dev.sh test                 every test: unit, integration (SQLite + PostgreSQL), browser
#   scripts/dev.sh site                 build only the browser bundle into target/site
#   scripts/dev.sh setup                install what a fresh machine lacks, build nothing
#
# It installs what is missing (wasm32 target, wasm-bindgen-cli, npm packages, and for
# `test` Debian's chromium and postgresql) and skips what is present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WASM_BINDGEN_VERSION=0.2.130
NAME=mcpgateway
SITE=target/site
PKG=$SITE/pkg
PG_PORT=${MCPGATEWAY_TEST_PG_PORT:-55432}
# The gateway refuses MCPGATEWAY_* variables it does not know, and the tests load its config.
unset MCPGATEWAY_TEST_PG_PORT
PG_DATA=${TMPDIR:-/tmp}/mcpgateway-test-pg

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "root is needed to run: $*" >&2; exit 1; fi
}

apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from Debian"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_build_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (matches the wasm-bindgen crate pin)"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
  if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] \
    || [ ! -d node_modules/@modelcontextprotocol/sdk ] \
    || [ ! -d node_modules/@modelcontextprotocol/conformance ]; then
    say "installing npm packages (wasm-opt, playwright-core, the MCP TypeScript SDK and conformance suite)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

# The browser bundle: WASM (size-optimised profile) → wasm-bindgen → wasm-opt, plus CSS and public/.
build_site() {
  say "building the browser bundle"
  cargo build -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release
  mkdir -p "$PKG"
  wasm-bindgen --target web --no-typescript --out-dir "$PKG" --out-name "$NAME" \
    target/wasm32-unknown-unknown/wasm-release/frontend.wasm
  node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$PKG/${NAME}_bg.wasm" -o "$PKG/${NAME}_bg.opt.wasm"
  mv "$PKG/${NAME}_bg.opt.wasm" "$PKG/${NAME}_bg.wasm"
  cp style/main.css "$PKG/$NAME.css"
  cp -r public/. "$SITE/"
  say "bundle: $(du -h "$PKG/${NAME}_bg.wasm" | cut -f1) wasm, $(gzip -c "$PKG/${NAME}_bg.wasm" | wc -c) bytes gzipped"
}

pg() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/$1" "${@:2}"; else "$bin/$1" "${@:2}"; fi
}

# A throw-away PostgreSQL cluster on 127.0.0.1:$PG_PORT for the tests.
start_postgres() {
  apt_install postgresql
  if ! pg pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      say "creating a test PostgreSQL cluster in $PG_DATA"
      rm -rf "$PG_DATA"; mkdir -p "$PG_DATA"
      [ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
      pg initdb -D "$PG_DATA" -U postgres --auth=trust >/dev/null
    fi
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    pg pg_ctl -D "$PG_DATA" -l "$PG_DATA/server.log" -w -o \
      "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DATA -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null
  fi
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  export TEST_REQUIRE_POSTGRES=1
}

cmd_run() {
  ensure_build_tools
  build_site
  say "building the server (release)"
  cargo build --release -p server --bin mcpgateway
  exec target/release/mcpgateway serve "$@"
}

cmd_test() {
  ensure_build_tools
  apt_install chromium
  start_postgres
  build_site
  say "unit and integration tests (SQLite and PostgreSQL)"
  cargo test -p app -p server
  say "browser tests (headless chromium)"
  # The binary `cargo test` just built for the CLI tests (same features, no second link).
  MCPGATEWAY_BIN="$PWD/target/debug/mcpgateway" MCPGATEWAY_SITE_ROOT="$PWD/$SITE" node --test end2end/tests/
}

case "${1:-}" in
  run) shift; cmd_run "$@" ;;
  test) cmd_test ;;
  site) ensure_build_tools; build_site ;;
  setup) ensure_build_tools; apt_install chromium postgresql ;;
  *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
