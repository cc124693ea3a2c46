#!/usr/bin/env bash
# The floor: the plainest shell sequence that does what `tmachine swarm bootstrap` does on
# the same kind of hosts, with no checks and no progress: start N host containers, wait for
# sshd, scp the engine bundle, untar it, start containerd and dockerd with TLS on 2376,
# `swarm init` on the first host and `swarm join` on the others. Benchmarks time it in the
# same run as tmachine, so each target reads as a ratio to it.
#
# Usage: bench/floor.sh N BUNDLE.tgz [existing]
#   N         hosts (1 manager, N-1 workers)
#   existing  skip starting containers: the hosts are FLOOR_HOSTS="ip1 ip2 ..." (with sshd,
#             user tmachine, key FLOOR_KEY) and get no engine yet (the generic case)
# Env: DOCKER_HOST (the lab engine), FLOOR_SUBNET (default 10.199.0.0/24)
# Prints one line: "floor N hosts=S engine=S swarm=S total=S" (seconds).
set -euo pipefail
n=${1:?usage: floor.sh N BUNDLE.tgz [existing]}
bundle=${2:?usage: floor.sh N BUNDLE.tgz [existing]}
mode=${3:-new}
image=${FLOOR_IMAGE:-tmachine/host:bookworm}
subnet=${FLOOR_SUBNET:-10.199.0.0/24}
prefix=floor$$
work=$(mktemp -d)
now() { date +%s%N; }
# Seconds since $1 (nanoseconds), with two decimals, in plain shell arithmetic.
since() { local ms=$(( ($(now) - $1) / 1000000 )); printf '%d.%02d' $((ms / 1000)) $(((ms % 1000) / 10)); }
ssh_opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes)

cleanup() {
  if [ "$mode" = new ]; then
    for i in $(seq 1 "$n"); do docker rm -f -v "$prefix-$i" >/dev/null 2>&1 || true; docker volume rm "$prefix-$i" >/dev/null 2>&1 || true; done
    docker network rm "$prefix" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# TLS material, made before the clock starts (tmachine's CA exists before a bootstrap too).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ca -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=client -keyout "$work/key.pem" -out "$work/client.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > "$work/client.ext"
openssl x509 -req -in "$work/client.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -CAcreateserial -days 1 -extfile "$work/client.ext" -out "$work/cert.pem" 2>/dev/null

caps=(SYS_ADMIN NET_ADMIN SYS_PTRACE MKNOD SYS_TIME SYSLOG AUDIT_CONTROL MAC_ADMIN MAC_OVERRIDE WAKE_ALARM BLOCK_SUSPEND LINUX_IMMUTABLE IPC_LOCK SYS_RAWIO SYS_BOOT SYS_NICE SYS_TTY_CONFIG LEASE AUDIT_READ SYS_PACCT NET_BROADCAST IPC_OWNER DAC_READ_SEARCH)
cap_args=(); for c in "${caps[@]}"; do cap_args+=(--cap-add "$c"); done

start=$(now)
ips=()
if [ "$mode" = new ]; then
  ssh-keygen -q -t ed25519 -N '' -f "$work/id" 
  key=$work/id
  docker network create --subnet "$subnet" "$prefix" >/dev/null
  base=${subnet%.*}
  for i in $(seq 1 "$n"); do
    ip="$base.$((10 + i))"; ips+=("$ip")
    docker run -d --name "$prefix-$i" --hostname "$prefix-$i" "${cap_args[@]}" \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns=host \
      -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
      -v "$prefix-$i:/var/lib/docker" --network "$prefix" --ip "$ip" "$image" >/dev/null
    docker exec "$prefix-$i" sh -c "install -d -m700 -o tmachine -g tmachine /home/tmachine/.ssh && echo '$(cat "$work/id.pub")' > /home/tmachine/.ssh/authorized_keys && chown tmachine /home/tmachine/.ssh/authorized_keys" &
  done
  wait
else
  read -r -a ips <<< "${FLOOR_HOSTS:?FLOOR_HOSTS is needed with existing}"
  key=${FLOOR_KEY:?FLOOR_KEY is needed with existing}
fi
for ip in "${ips[@]}"; do
  until ssh "${ssh_opts[@]}" -o ConnectTimeout=1 -i "$key" "tmachine@$ip" true 2>/dev/null; do :; done &
done
wait
hosts=$(since "$start")

engine_start=$(now)
i=0
for ip in "${ips[@]}"; do
  i=$((i + 1))
  (
    # A server certificate with the host's address, as tmachine issues one.
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$ip" -keyout "$work/s$i-key.pem" -out "$work/s$i.csr" 2>/dev/null
    printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$ip" > "$work/s$i.ext"
    openssl x509 -req -in "$work/s$i.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -CAcreateserial -days 1 -extfile "$work/s$i.ext" -out "$work/s$i.pem" 2>/dev/null
    scp -q "${ssh_opts[@]}" -i "$key" "$bundle" "$work/ca.pem" "$work/s$i.pem" "$work/s$i-key.pem" "tmachine@$ip:/tmp/"
    ssh "${ssh_opts[@]}" -i "$key" "tmachine@$ip" "sudo sh -c '
      tar -xzf /tmp/$(basename "$bundle") -C /usr/local/bin --strip-components=1
      mkdir -p /etc/docker && mv /tmp/ca.pem /tmp/s$i.pem /tmp/s$i-key.pem /etc/docker/
      systemd-run --quiet --unit=floor-containerd -p Type=notify -p Delegate=yes /usr/local/bin/containerd
      systemd-run --quiet --unit=floor-docker -p Type=notify -p Delegate=yes /usr/local/bin/dockerd --containerd=/run/containerd/containerd.sock -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2376 --tlsverify --tlscacert=/etc/docker/ca.pem --tlscert=/etc/docker/s$i.pem --tlskey=/etc/docker/s$i-key.pem
    '"
  ) &
done
wait
dockerc() { local ip=$1; shift; docker --tlsverify --tlscacert "$work/ca.pem" --tlscert "$work/cert.pem" --tlskey "$work/key.pem" -H "tcp://$ip:2376" "$@"; }
for ip in "${ips[@]}"; do until dockerc "$ip" version >/dev/null 2>&1; do :; done & done
wait
engine=$(since "$engine_start")

swarm_start=$(now)
manager=${ips[0]}
DOCKER_CONFIG=$work dockerc "$manager" swarm init --advertise-addr "$manager" >/dev/null
token=$(DOCKER_CONFIG=$work dockerc "$manager" swarm join-token -q worker)
for ip in "${ips[@]:1}"; do DOCKER_CONFIG=$work dockerc "$ip" swarm join --token "$token" --advertise-addr "$ip" "$manager:2377" >/dev/null & done
wait
swarm=$(since "$swarm_start")
echo "floor $n hosts=$hosts engine=$engine swarm=$swarm total=$(since "$start")"
