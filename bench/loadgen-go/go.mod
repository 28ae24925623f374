module atoll.dev/bench/loadgen

go 1.19
