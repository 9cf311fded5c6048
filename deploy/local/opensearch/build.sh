#!/usr/bin/env bash
# Build the local OpenSearch node: jars from Maven Central (via the machine's mvn) + our launcher class.
#
#   deploy/local/opensearch/build.sh OUT_DIR        e.g. "$GLASSHOUSE_HOME/opt/opensearch"
#
# Produces:
#   OUT_DIR/lib/*.jar          runtime class path (mvn dependency:copy-dependencies of pom.xml)
#   OUT_DIR/classes/           glasshouse/LocalOpenSearch.class (plain javac)
#   OUT_DIR/config/            log4j2.properties (the node's config dir, path.conf)
#   OUT_DIR/.libs-stamp        sha256 of pom.xml when lib/ was filled; jars are re-resolved only when it changes
#   OUT_DIR/.build-stamp       sha256 of all inputs + javac version; when it matches, nothing is redone
# Idempotent: a second run with unchanged inputs only checks the stamp.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out="$1"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

src="$here/src/main/java/glasshouse/LocalOpenSearch.java"
inputs=("$here/pom.xml" "$src" "$here/config/log4j2.properties")

for tool in mvn javac java sha256sum; do
  command -v "$tool" >/dev/null || { echo "build.sh: '$tool' not found on PATH" >&2; exit 1; }
done

stamp="$( { for f in "${inputs[@]}"; do sha256sum "$f" | cut -d' ' -f1; done; javac -version 2>&1; } | sha256sum | cut -d' ' -f1)"
libs_stamp="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"

if [[ -f "$out/.build-stamp" && "$(cat "$out/.build-stamp")" == "$stamp" \
      && -f "$out/classes/glasshouse/LocalOpenSearch.class" && -f "$out/.libs-stamp" ]]; then
  echo "opensearch: up to date in $out"
  exit 0
fi

# 1. jars (only when pom.xml changed or lib/ is missing)
if [[ -f "$out/.libs-stamp" && "$(cat "$out/.libs-stamp")" == "$libs_stamp" ]] && compgen -G "$out/lib/opensearch-*.jar" >/dev/null; then
  echo "opensearch: jars up to date"
else
  echo "opensearch: resolving jars from Maven Central into $out/lib"
  rm -rf "$out/lib.tmp"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out/lib.tmp"
  rm -rf "$out/lib"
  mv "$out/lib.tmp" "$out/lib"
  echo "$libs_stamp" > "$out/.libs-stamp"
fi

# 2. launcher class
echo "opensearch: compiling glasshouse.LocalOpenSearch"
rm -rf "$out/classes.tmp"
mkdir -p "$out/classes.tmp"
javac --release 17 -nowarn -encoding UTF-8 -cp "$out/lib/*" -d "$out/classes.tmp" "$src"
rm -rf "$out/classes"
mv "$out/classes.tmp" "$out/classes"

# 3. config dir
mkdir -p "$out/config"
cp "$here/config/log4j2.properties" "$out/config/log4j2.properties"

echo "$stamp" > "$out/.build-stamp"
echo "opensearch: built in $out ($(ls "$out/lib" | wc -l) jars)"
