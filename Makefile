# The front door: every target here is what the README and CI use.
GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/zhostdb/zhost/cmd.Version=$(VERSION)
TIMEOUT  ?= 30m
PKGS     ?= ./...
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

# Binaries that tests run as real subprocesses; testbin reads these paths.
export ZHOST_BIN          := $(BIN)/zhost
export ZHOST_CUSTOM_MOUNT := $(BIN)/zhost-plugin-custom-mount
export ZHOST_CUSTOM_STORAGE := $(BIN)/zhost-plugin-custom-storage

.PHONY: all build plugins run test test-short lint fmt proto bench fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/zhost ./cmd/zhost

plugins:
	@for d in examples/custom-*/; do \
		n=$$(basename $$d); \
		if [ -f $$d/main.go ]; then \
			echo "$(GO) build -o $(BIN)/zhost-plugin-$$n ./$$d"; \
			$(GO) build -o $(BIN)/zhost-plugin-$$n ./$$d || exit 1; \
		fi; \
	done

run: build plugins
	$(BIN)/zhost run examples/cluster.hcl

test: build plugins
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout $(TIMEOUT) $(PKGS)

test-short: build plugins
	$(GO) test -short -timeout $(TIMEOUT) $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

# proto regenerates the committed gRPC/protobuf code. It installs protoc from
# Debian's packages and the Go generators from the module proxy if missing.
proto:
	@{ command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/struct.proto ]; } || { apt-get update -qq && apt-get install -y -qq protobuf-compiler libprotobuf-dev; }
	@command -v protoc-gen-go >/dev/null || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@command -v protoc-gen-go-grpc >/dev/null || $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc -I plugins/proto \
		--go_out=plugins/proto --go_opt=paths=source_relative \
		--go-grpc_out=plugins/proto --go-grpc_opt=paths=source_relative \
		plugins/proto/*.proto

# bench runs every Go benchmark (BENCHTIME=1s for steadier figures; each
# reports ratios against a baseline measured in the same run). For the
# server as a whole use `zhost bench` (see docs/performance.md).
BENCHTIME ?= 1x
bench: build plugins
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m $(PKGS)

# fuzz runs every fuzz target for FUZZTIME each (go test -fuzz takes one
# target at a time). The committed seed corpora also run in `make test`.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzValidate:./hcl FuzzDecode:./host/wire FuzzDecodeObject:./host/db \
	FuzzSplitPath:./host/db FuzzParse:./internal/forwarded \
	FuzzDecodeObject:./plugins/packless FuzzOpen:./plugins/filestorage \
	FuzzUnpackRecords:./plugins/sdk

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name$$' -fuzztime $(FUZZTIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf $(BIN) var examples/var
