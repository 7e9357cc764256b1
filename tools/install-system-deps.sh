#!/usr/bin/env bash
# Installs the system tools tidelake needs when they are missing: Java 17+ and Maven (the local
# Kafka broker). Uses apt-get when it can (Debian/Ubuntu as root); otherwise says what to install.
set -euo pipefail

need=()
java_major() { java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then need+=(openjdk-17-jre-headless); fi
if ! command -v mvn >/dev/null 2>&1; then need+=(maven); fi
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver fonts-dejavu-core) ;;
    *) echo "install-system-deps: unknown extra '$extra'" >&2; exit 2 ;;
  esac
done

[ ${#need[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "installing with apt-get: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "tidelake needs: ${need[*]} (Java 17+ and Maven 3.6+ run the local Kafka broker)." >&2
  echo "Install them with your package manager, or use Docker: docker compose up" >&2
  exit 2
fi
