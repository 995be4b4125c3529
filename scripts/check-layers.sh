#!/usr/bin/env bash
# Import-layer check (DESIGN §1: imports point down only). A stage of
# scripts/test.sh. Checks the transitive imports of the product code
# (go list .Deps, test files not included) against:
#
#   nothing below fs/ (blockstore, accel/..., codec) imports go-fuse
#   blockstore imports no accel package
#   accel/... imports no blockstore and no fs
#   accel/uacce imports no accel/qm
#   accel/qm imports no accel/session
#   codec (the bottom layer) imports no other accelfs package
#
# Prints every violation as "PKG imports DEP (rule)"; exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."

mod=$(go list -m)
# One line per package: "PKG DEP DEP ...", module prefix cut to "@/".
graph=$(go list -f '{{.ImportPath}} {{join .Deps " "}}' ./... | sed "s#$mod/#@/#g; s#$mod #@ #")

violations=0
rule() { # rule DESCRIPTION PKG_REGEX FORBIDDEN_REGEX
	local desc=$1 pkgs=$2 forbidden=$3 out
	out=$(awk -v p="^($pkgs)\$" -v f="^($forbidden)\$" -v d="$desc" '
		$1 ~ p { for (i = 2; i <= NF; i++) if ($i ~ f && $i != $1) print "  " $1 " imports " $i "  (" d ")" }
	' <<<"$graph" | sed "s#@/#$mod/#g")
	if [ -n "$out" ]; then
		echo "$out"
		violations=$((violations + $(wc -l <<<"$out")))
	fi
}

rule "nothing below fs/ imports go-fuse" '@/blockstore(/.*)?|@/accel(/.*)?|@/codec(/.*)?' 'github.com/hanwen/go-fuse(/.*)?'
rule "blockstore imports no accel package" '@/blockstore(/.*)?' '@/accel(/.*)?'
rule "accel/ imports no blockstore or fs" '@/accel(/.*)?' '@/blockstore(/.*)?|@/fs(/.*)?'
rule "uacce imports no qm" '@/accel/uacce(/.*)?' '@/accel/qm(/.*)?'
rule "qm imports no session" '@/accel/qm(/.*)?' '@/accel/session(/.*)?'
rule "codec imports no other accelfs package" '@/codec(/.*)?' '@/.*'

if [ "$violations" -gt 0 ]; then
	echo "$violations import-layer violation(s) (DESIGN §1)"
	exit 1
fi
echo "import layers: ok ($(wc -l <<<"$graph") packages checked)"
