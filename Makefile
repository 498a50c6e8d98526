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
