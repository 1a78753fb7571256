.PHONY: run test
run:
	./scripts/demo
test:
	./scripts/test
