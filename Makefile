# Concord: federated learning for medical imaging.
#   make demo   a whole federation on this machine, on generated DICOM data
#   make test   every test (needs the Debian packages .ci/run installs)

GO        ?= go
BIN       := bin
BINARIES  := coordinator site-agent concordctl concord-sim concord-bench
SHARED    ?= ../shared
PROTOS    := proto/concord/v1/common.proto proto/concord/v1/agent.proto proto/concord/v1/admin.proto proto/concord/v1/trainer.proto
GOBIN     := $(shell $(GO) env GOPATH)/bin
# VERSION, when set (make build VERSION=v1.2.3), is what every binary's version command prints.
VERSION   ?=
LDFLAGS   := -s -w $(if $(VERSION),-X github.com/concord-fl/concord/internal/version.Stamp=$(VERSION))
export PATH := $(GOBIN):$(PATH)

.PHONY: all build test test-short demo proto verify-proto bench lint fuzz clean tools

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))
	@echo "built static binaries in $(BIN)/: $(BINARIES)"

# The whole suite; CONCORD_LONG_TESTS runs the external-trainer round on real data too.
test:
	CONCORD_SHARED=$(abspath $(SHARED)) CONCORD_LONG_TESTS=1 $(GO) test -count=1 -timeout 40m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Default scenario: 4 hospitals with their own scanners and label mixes, real DICOM
# files through the imaging pipeline, 10 rounds, multiparty homomorphic encryption.
demo: build
	$(BIN)/concord-sim --sites 4 --rounds 10 --local-epochs 3 --seed 1 --secure-aggregation mhe --out demo-out
	@echo "results: demo-out/summary.json, demo-out/learning-curve.png, demo-out/model.f32, demo-out/model-card/card.html, demo-out/audit/"

tools:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	@test -x $(GOBIN)/protoc-gen-go || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	@test -x $(GOBIN)/protoc-gen-go-grpc || $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

proto: tools
	protoc -I proto --go_out=. --go_opt=module=github.com/concord-fl/concord \
		--go-grpc_out=. --go-grpc_opt=module=github.com/concord-fl/concord $(PROTOS)
	protoc -I proto --python_out=deploy/trainer proto/concord/v1/trainer.proto

verify-proto: tools
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; mkdir -p $$tmp/py; \
	protoc -I proto --go_out=$$tmp --go_opt=module=github.com/concord-fl/concord \
		--go-grpc_out=$$tmp --go-grpc_opt=module=github.com/concord-fl/concord $(PROTOS) && \
	protoc -I proto --python_out=$$tmp/py proto/concord/v1/trainer.proto && \
	diff -r $$tmp/proto/concordpb proto/concordpb && \
	diff $$tmp/py/concord/v1/trainer_pb2.py deploy/trainer/concord/v1/trainer_pb2.py && \
	echo "generated code is up to date" || { echo "generated code is stale: run make proto"; exit 1; }

bench: build
	$(BIN)/concord-bench aggregate --sites 10 --params 1000000 --json
	$(BIN)/concord-bench transfer --params 10000000 --json
	$(BIN)/concord-bench he --params 1000000 --sites 10 --json
	$(BIN)/concord-bench dicom --dir $(SHARED)/data/dicom/pydicom --json
	$(BIN)/concord-bench train --json

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$(GOBIN)/staticcheck ./...

clean:
	rm -rf $(BIN) demo-out

# The FHIR R4 peers serving/fhirr4's tests use (Medplum validator and server), as pinned
# in internal/testfhir/package-lock.json. .ci/run does the same.
.PHONY: fhir-peers
fhir-peers:
	cd internal/testfhir && npm ci --no-audit --no-fund

# --- Packaging: air-gapped archive, OCI images, Helm charts (deploy/install, deploy/oci, deploy/helm) ---
# make dist VERSION=v1.2.0     dist/concord-v1.2.0-linux-amd64.tar.gz (+ .sha256): binaries, units,
#                              example configs, install.sh, SHA256SUMS; reproducible for one VERSION
# make images VERSION=v1.2.0   dist/images/concord-{coordinator,site-agent}-v1.2.0.oci.tar, no container daemon
# make helm-lint               lint and render both charts with helm's Go module
# make test-tools              the tools module's tests (packaging, images, compose, charts)
DIST         ?= dist
DIST_BINS    := coordinator site-agent concordctl
DIST_NAME     = concord-$(VERSION)-linux-amd64
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: dist images helm-lint test-tools

dist:
	@test -n "$(VERSION)" || { echo "make dist needs VERSION, e.g. make dist VERSION=v1.2.0"; exit 1; }
	$(MAKE) build BINARIES="$(DIST_BINS)" BIN=$(BIN)
	@rm -rf $(DIST)/$(DIST_NAME) && mkdir -p $(DIST)/$(DIST_NAME)/bin $(DIST)/$(DIST_NAME)/systemd $(DIST)/$(DIST_NAME)/etc
	cp $(addprefix $(BIN)/,$(DIST_BINS)) $(DIST)/$(DIST_NAME)/bin/
	cp deploy/systemd/concord-coordinator.service deploy/systemd/concord-site-agent.service $(DIST)/$(DIST_NAME)/systemd/
	cp deploy/install/etc/agent.yaml.example deploy/install/etc/coordinator.yaml.example $(DIST)/$(DIST_NAME)/etc/
	cp deploy/install/install.sh deploy/install/README.md $(DIST)/$(DIST_NAME)/
	echo "$(VERSION)" > $(DIST)/$(DIST_NAME)/VERSION
	cd $(DIST)/$(DIST_NAME) && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS
	tar -C $(DIST) --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$(SOURCE_DATE_EPOCH) -cf - $(DIST_NAME) | gzip -n > $(DIST)/$(DIST_NAME).tar.gz
	cd $(DIST) && sha256sum $(DIST_NAME).tar.gz > $(DIST_NAME).tar.gz.sha256
	@rm -rf $(DIST)/$(DIST_NAME)
	@echo "wrote $(DIST)/$(DIST_NAME).tar.gz and its .sha256"

images:
	@test -n "$(VERSION)" || { echo "make images needs VERSION, e.g. make images VERSION=v1.2.0"; exit 1; }
	$(MAKE) build BINARIES="coordinator site-agent" BIN=$(BIN)
	cd tools && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(abspath $(BIN))/ ./cmd/concord-healthcheck
	cd tools && $(GO) run ./cmd/concord-image --bin $(abspath $(BIN)) --version $(VERSION) \
		--revision "$$(git rev-parse HEAD 2>/dev/null)" --source-date-epoch $(SOURCE_DATE_EPOCH) --out $(abspath $(DIST))/images

helm-lint:
	cd tools && $(GO) run ./cmd/concord-chart lint $(abspath deploy/helm/concord-coordinator) $(abspath deploy/helm/concord-site-agent)

test-tools:
	cd tools && $(GO) test -count=1 -timeout 20m ./...

# make test runs the tools module's tests too (a nested module: ./... above does not reach it).
test: test-tools

# Vault (deploy/vault/README.md): the real Vault server, built once from
# tools/vault (its own module), and the tests that run against it.
VAULT_BIN ?= $(GOBIN)/concord-vault-1.21.0
.PHONY: vault test-vault
vault:
	@test -x $(VAULT_BIN) || (cd tools/vault && CGO_ENABLED=0 $(GO) build -trimpath -o $(VAULT_BIN) .)
	@echo "vault: $(VAULT_BIN)"

# CONCORD_VAULT_LONG=1 makes the certificate rotation job 10 minutes instead of 5.
test-vault: vault
	CONCORD_VAULT=$(VAULT_BIN) $(GO) test -count=1 -timeout 30m ./internal/vaultauth ./cmd/internal/config
	CONCORD_VAULT=$(VAULT_BIN) $(GO) test -count=1 -timeout 30m -run Vault ./cmd/coordinator ./cmd/site-agent ./cmd/concordctl
	CONCORD_VAULT=$(VAULT_BIN) $(GO) test -count=1 -timeout 30m -run TestVault -v ./sim
