# Convenience targets; scripts/setup.sh does the work (and works without make).
.PHONY: run test install lint edge
run:
	scripts/setup.sh run $(if $(CONFIG),--config $(CONFIG))
test:
	scripts/setup.sh test
install:
	scripts/setup.sh install --test
lint:
	.venv/bin/ruff check gateway pipeline tests bench testbed
edge:
	edge/run.sh $(if $(WORKERS),--workers $(WORKERS))
