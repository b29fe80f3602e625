# Shared by the bench scripts (sourced, not run).

# wait_listening HOST:PORT waits up to 10 s for a TCP listener (bash's
# /dev/tcp: no curl needed).
wait_listening() {
	local addr=$1
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on $addr after 10 s" >&2
	return 1
}
