#!/usr/bin/env bash
# services.sh: the servers trustlog's tests talk to, from the project's own
# files, on a Debian machine as root.
#
#   scripts/services.sh up [NAME...]      install (first time) and start; wait until each answers
#   scripts/services.sh down [NAME...]    stop
#   scripts/services.sh status [NAME...]  say which answer; exit 1 if one does not
#   scripts/services.sh exec kafka|pulsar DIR PORT...
#                                         run a private broker in the foreground (tests that
#                                         stop and restart a broker use this; see below)
#
# NAME is postgres, mariadb, kafka or pulsar; none means all four. Every
# command is idempotent: `up` on running services only checks them.
#
#   PostgreSQL 15   127.0.0.1:5432  user postgres, trust, database test   (Debian package)
#   MariaDB 10.11   127.0.0.1:3306  root, empty password, database test   (Debian package)
#   Apache Kafka    127.0.0.1:9092  KRaft, one node (broker + controller on 9093)
#   Apache Pulsar   127.0.0.1:6650  standalone, admin HTTP on 8080, deduplication on,
#                                   no functions worker, no stream storage
#
# Kafka and Pulsar are their official artifacts from Maven Central
# (org.apache.kafka:kafka_2.13, org.apache.pulsar:pulsar-broker, with their
# dependencies), resolved by Maven into $TRUSTLOG_SERVICES_CACHE
# (default /var/cache/trustlog): the first `up` downloads them, later ones
# start from the cache. Their data and logs live in $TRUSTLOG_SERVICES_STATE
# (default /var/lib/trustlog). A broker that does not answer a
# create/produce/consume round trip in time fails `up` with its log's tail.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TRUSTLOG_SERVICES_CACHE:-/var/cache/trustlog}"
state="${TRUSTLOG_SERVICES_STATE:-/var/lib/trustlog}"
m2="$cache/m2"

say() { printf 'services: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: run COMMAND until it succeeds.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.5
	done
}

apt_install() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	((${#missing[@]} == 0)) && return 0
	say "installing ${missing[*]} (Debian packages)"
	export DEBIAN_FRONTEND=noninteractive
	# A policy-rc.d that refuses lets the packages install without starting
	# their services through init scripts: this script starts them itself.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' RETURN
	fi
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- PostgreSQL

pg_version() { ls /etc/postgresql 2>/dev/null | sort -n | tail -n1; }
pg_ok() { pg_isready -q -h 127.0.0.1 -p 5432 && psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; }

postgres_up() {
	command -v pg_ctlcluster >/dev/null && [ -n "$(pg_version)" ] || apt_install postgresql
	local v hba
	v="$(pg_version)"
	hba="/etc/postgresql/$v/main/pg_hba.conf"
	# trust for TCP on loopback, ahead of Debian's password lines.
	if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
		sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
		pg_isready -q -h 127.0.0.1 -p 5432 && pg_ctlcluster --skip-systemctl-redirect "$v" main reload
	fi
	if ! pg_isready -q -h 127.0.0.1 -p 5432; then
		pg_ctlcluster --skip-systemctl-redirect "$v" main start
	fi
	wait_for 60 PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not start; $(tail -n 20 /var/log/postgresql/postgresql-"$v"-main.log)"
	if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname='test'" | grep -q 1; then
		psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test'
	fi
	pg_ok || die "PostgreSQL answers but database test does not"
	say "postgres up (127.0.0.1:5432, database test)"
}

postgres_down() {
	local v
	v="$(pg_version)"
	[ -n "$v" ] && pg_ctlcluster --skip-systemctl-redirect "$v" main stop 2>/dev/null || true
}

# ------------------------------------------------------------------- MariaDB

maria_ok() { mariadb --no-defaults -h 127.0.0.1 -P 3306 -u root -e 'select 1' test >/dev/null 2>&1; }

mariadb_up() {
	command -v mariadbd >/dev/null || apt_install mariadb-server
	if ! mariadb-admin --no-defaults -h 127.0.0.1 -u root ping >/dev/null 2>&1 &&
		! mariadb-admin ping >/dev/null 2>&1; then
		mkdir -p /run/mysqld
		chown mysql:mysql /run/mysqld 2>/dev/null || true
		# The package creates the system tables; a data directory left
		# without them (an interrupted install) gets them here.
		if [ ! -d /var/lib/mysql/mysql ]; then
			mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
		fi
		start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd)" -- --user=mysql
	fi
	wait_for 60 MariaDB mariadb-admin ping || die "MariaDB did not start; $(tail -n 20 /var/lib/mysql/*.err 2>/dev/null)"
	# Debian's root logs in by unix socket only: let it use an empty
	# password over TCP too.
	if ! maria_ok; then
		mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
			CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
			GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
			CREATE DATABASE IF NOT EXISTS test; FLUSH PRIVILEGES;"
	fi
	maria_ok || die "MariaDB answers on its socket but not as root@127.0.0.1:3306 with database test"
	say "mariadb up (127.0.0.1:3306, database test)"
}

mariadb_down() { mariadb-admin --no-defaults -h 127.0.0.1 -u root shutdown 2>/dev/null || true; }

# ------------------------------------------------------- Java brokers, shared

java_bin() {
	if [ -n "${JAVA_HOME:-}" ]; then
		echo "$JAVA_HOME/bin/java"
	elif [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]; then
		echo /usr/lib/jvm/java-17-openjdk-amd64/bin/java
	else
		command -v java
	fi
}

# libdir NAME: the folder of NAME's jars, resolved by Maven from
# scripts/services/NAME/pom.xml on first use. The folder is named after
# the pom's hash, so a changed pom resolves anew.
libdir() {
	local name=$1 pom="$here/services/$1/pom.xml" key dir
	key="$(sha256sum "$pom" | cut -c1-12)"
	dir="$cache/$name-$key"
	if [ ! -e "$dir/.complete" ]; then
		command -v mvn >/dev/null || apt_install maven
		say "resolving $name from Maven Central into $dir (first time only)"
		rm -rf "$dir"
		mkdir -p "$dir" "$m2"
		if ! mvn -B -q -f "$pom" -Dmaven.repo.local="$m2" dependency:copy-dependencies \
			-DoutputDirectory="$dir/lib" -DincludeScope=runtime >"$dir/mvn.log" 2>&1; then
			tail -n 40 "$dir/mvn.log" >&2
			die "could not resolve $name's artifacts (log: $dir/mvn.log)"
		fi
		touch "$dir/.complete"
	fi
	echo "$dir/lib"
}

# check NAME ARGS...: the create/produce/consume round trip, with the client
# libraries trustlog uses (internal/tools/servicecheck).
check() {
	local bin="$cache/servicecheck"
	if [ ! -x "$bin" ] || [ -n "$(find "$here/../internal/tools/servicecheck" "$here/../go.sum" -newer "$bin" 2>/dev/null | head -n1)" ]; then
		mkdir -p "$cache"
		(cd "$here/.." && go build -o "$bin" ./internal/tools/servicecheck) || die "could not build internal/tools/servicecheck"
	fi
	"$bin" "$@"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_bg NAME PORT SECS ARGS...: run `services.sh exec NAME DIR ARGS...`
# in the background (new session, pid in DIR/pid); wait up to SECS seconds
# for PORT to open.
start_bg() {
	local name=$1 port=$2 secs=$3 dir="$state/$1"
	shift 3
	mkdir -p "$dir"
	confhash "$name" >"$dir/config.sha"
	setsid nohup bash "$here/services.sh" exec "$name" "$dir" "$@" >>"$dir/stdout.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
	wait_for "$secs" "$name" port_open "$port"
}

# confhash NAME: the hash of NAME's files under scripts/services/.
confhash() { cat "$here/services/$1"/* | sha256sum | cut -c1-16; }

# current NAME: true unless NAME runs from this script with other files
# under scripts/services/NAME than it has now; then it is stopped, so that
# `up` starts it with the files as they are.
current() {
	local dir="$state/$1"
	[ -f "$dir/pid" ] && [ -f "$dir/config.sha" ] || return 0
	[ "$(cat "$dir/config.sha")" = "$(confhash "$1")" ] && return 0
	say "$1: its configuration changed; restarting it"
	stop_bg "$1"
	return 1
}

broker_failed() {
	local dir="$state/$1"
	say "$1 $2; the tail of its logs:"
	tail -n 40 "$dir/stdout.log" >&2 2>/dev/null || true
	for f in "$dir"/logs/*.log; do
		[ -f "$f" ] && { printf '\n== %s\n' "$f" >&2; tail -n 60 "$f" >&2; }
	done
	exit 1
}

stop_bg() {
	local dir="$state/$1" pid
	[ -f "$dir/pid" ] || return 0
	pid="$(cat "$dir/pid")"
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
		local end=$((SECONDS + 60))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$dir/pid"
}

# broker_up NAME PORT SECS READY ARGS...: start NAME in the background and
# wait up to SECS seconds for READY (a round trip). A broker whose data was
# left broken (a machine stopped mid-write) gets one more start on a fresh
# data directory, said on stderr; then its log's tail and exit 1.
broker_up() {
	local name=$1 port=$2 secs=$3 ready=$4 try
	shift 4
	for try in 1 2; do
		if start_bg "$name" "$port" "$secs" "$@" && wait_for "$secs" "$name" "$ready"; then
			return 0
		fi
		[ "$try" = 1 ] && [ -d "$state/$name/data" ] || break
		say "$name does not answer; starting it once more on a fresh data directory"
		stop_bg "$name"
		mv "$state/$name" "$state/$name.broken.$(date +%s)"
	done
	broker_failed "$name" "does not answer a round trip: $("$ready" 2>&1 | tail -n 3)"
}

# --------------------------------------------------------------------- Kafka

# kafka_exec DIR PORT CONTROLLER_PORT: one KRaft node (broker + controller)
# in the foreground, data and logs in DIR.
kafka_exec() {
	local dir=$1 port=${2:-9092} cport=${3:-9093} lib java
	lib="$(libdir kafka)"
	java="$(java_bin)"
	mkdir -p "$dir/data" "$dir/logs"
	sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA@|$dir/data|g" \
		"$here/services/kafka/server.properties" >"$dir/server.properties"
	if [ ! -f "$dir/data/meta.properties" ]; then
		"$java" -Dlog4j2.configurationFile="$here/services/kafka/tools-log4j2.yaml" -cp "$lib/*" \
			kafka.tools.StorageTool format -t "$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" \
			-c "$dir/server.properties" --standalone --ignore-formatted >/dev/null
	fi
	exec "$java" -Xms512m -Xmx512m -XX:+UseG1GC -Dlog4j2.configurationFile="$here/services/kafka/log4j2.yaml" \
		-Dkafka.logs.dir="$dir/logs" -cp "$lib/*" kafka.Kafka "$dir/server.properties"
}

kafka_ready() { port_open 9092 && check kafka 127.0.0.1:9092; }

kafka_up() {
	if current kafka && kafka_ready 2>/dev/null; then
		say "kafka up (127.0.0.1:9092)"
		return
	fi
	port_open 9092 && die "port 9092 is taken by something that is not a working Kafka broker"
	libdir kafka >/dev/null
	broker_up kafka 9092 120 kafka_ready 9092 9093
	say "kafka up (127.0.0.1:9092, KRaft, data in $state/kafka)"
}

kafka_down() { stop_bg kafka; }
kafka_status() { kafka_ready; }

# -------------------------------------------------------------------- Pulsar

# pulsar_exec DIR PORT WEB_PORT: a standalone broker (RocksDB metadata, one
# embedded bookie on a free loopback port) in the foreground, data and logs
# in DIR.
pulsar_exec() {
	local dir=$1 port=${2:-6650} web=${3:-8080} lib java
	lib="$(libdir pulsar)"
	java="$(java_bin)"
	mkdir -p "$dir/data/tmp" "$dir/logs"
	sed -e "s|@PORT@|$port|g" -e "s|@WEB_PORT@|$web|g" "$here/services/pulsar/standalone.conf" >"$dir/standalone.conf"
	cd "$dir"
	exec "$java" -Xms256m -Xmx512m -XX:MaxDirectMemorySize=256m -XX:+UseG1GC \
		-Djava.net.preferIPv4Stack=true -Dio.netty.tryReflectionSetAccessible=true \
		-Dio.netty.recycler.maxCapacityPerThread=4096 -Dpulsar.allocator.exit_on_oom=true \
		--add-opens java.base/sun.net=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED \
		--add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
		--add-opens java.management/sun.management=ALL-UNNAMED \
		--add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
		-Dlog4j.configurationFile="$here/services/pulsar/log4j2.xml" \
		-Dpulsar.log.dir="$dir/logs" -Dpulsar.log.file=pulsar-standalone.log \
		-Djava.io.tmpdir="$dir/data/tmp" \
		-cp "$lib/*" org.apache.pulsar.PulsarStandaloneStarter \
		--config "$dir/standalone.conf" --metadata-dir "$dir/data/metadata" --bookkeeper-dir "$dir/data/bookkeeper" \
		-nss -nfw
}

# pulsar_ready WEB_PORT: the starter creates public/default after the
# broker is up, and brokers/health writes and reads through BookKeeper.
pulsar_ready() {
	curl -sf "http://127.0.0.1:$1/admin/v2/namespaces/public/default" >/dev/null &&
		curl -sf "http://127.0.0.1:$1/admin/v2/brokers/health" >/dev/null
}

pulsar_up() {
	command -v curl >/dev/null || apt_install curl
	if current pulsar && pulsar_status 2>/dev/null; then
		say "pulsar up (127.0.0.1:6650, admin 127.0.0.1:8080)"
		return
	fi
	if port_open 6650 || port_open 8080; then
		die "port 6650 or 8080 is taken by something that is not a working Pulsar broker"
	fi
	libdir pulsar >/dev/null
	broker_up pulsar 6650 180 pulsar_status 6650 8080
	say "pulsar up (127.0.0.1:6650, admin 127.0.0.1:8080, deduplication on, data in $state/pulsar)"
}

pulsar_down() { stop_bg pulsar; }
pulsar_status() { pulsar_ready 8080 && check pulsar pulsar://127.0.0.1:6650; }

# ------------------------------------------------------------------ dispatch

all="postgres mariadb kafka pulsar"
postgres_status() { pg_ok; }
mariadb_status() { maria_ok; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
up | down)
	for n in ${*:-$all}; do
		case " $all " in *" $n "*) ;; *) die "unknown service $n (one of: $all)" ;; esac
	done
	for n in ${*:-$all}; do "${n}_$cmd"; done
	;;
status)
	rc=0
	for n in ${*:-$all}; do
		if "${n}_status" >/dev/null 2>&1; then say "$n: up"; else say "$n: down"; rc=1; fi
	done
	exit $rc
	;;
exec)
	n="${1:-}"
	shift || true
	case "$n" in kafka | pulsar) "${n}_exec" "$@" ;; *) die "exec: kafka or pulsar" ;; esac
	;;
*)
	sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
