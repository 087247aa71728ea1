#!/usr/bin/env bash
# Runs every side-by-side figure of wxtoken and its peers (see README.md):
# the go test benchmarks COUNT times each, summarized by benchstat (medians),
# then the counted figures, ROUNDS rounds each. Results go to OUT.
set -euo pipefail
cd "$(dirname "$0")"
COUNT=${COUNT:-6}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-out}
mkdir -p "$OUT"

{
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo || true
	go version
	go list -m github.com/silenceper/wechat/v2 golang.org/x/oauth2 github.com/redis/go-redis/v9 github.com/go-redis/redis/v8
	redis-server --version 2>/dev/null || echo "redis-server: not installed (Redis figures skipped)"
} | tee "$OUT/machine.txt"

go test -run '^$' -bench . -benchmem -count "$COUNT" -timeout 30m . | tee "$OUT/bench.txt"
# benchstat prints the median of the COUNT runs and their spread.
go run golang.org/x/perf/cmd/benchstat@latest "$OUT/bench.txt" | tee "$OUT/benchstat.txt"

go run ./cmd/figures -rounds "$ROUNDS" | tee "$OUT/figures.md"
