#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qkv/serve/model_service.h"

namespace qkv {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback: another address is the caller's explicit choice
  int port = 8080;                 // 0: any free port (bind() says which)
  std::string api_key;             // when set, /v1/ and /api/ need "Authorization: Bearer KEY"
  int64_t max_tokens = 1024;       // the most a completion may ask for
  size_t max_body_bytes = 1 << 20;
  int connection_threads = 64;  // a keep-alive client holds one while it stays connected
};

// The HTTP front of a ModelService: the explorer page (built into the binary), its JSON
// endpoints under /api/, and OpenAI's /v1/completions and /v1/models. Every bad request gets a
// 4xx with {"error": {"message", "type", "code"}}, and the server goes on serving.
class Server {
 public:
  Server(ModelService& service, ServerOptions options);
  ~Server();

  // Opens the port; throws std::runtime_error naming host and port when it cannot. Returns the
  // port bound.
  int bind();
  void listen();  // serves until stop(); call after bind()
  void stop();    // from any thread; listen() returns

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qkv
