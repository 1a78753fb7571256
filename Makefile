.PHONY: run test bench
run:
	./scripts/demo
test:
	./scripts/test
# make bench [SOAK=minutes] [ARGS="--quick ..."]: every benchmark; ./scripts/bench --help
bench:
	./scripts/bench $(if $(SOAK),--soak-minutes $(SOAK)) $(ARGS)
