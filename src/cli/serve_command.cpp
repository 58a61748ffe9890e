// `qkv serve`: the explorer page and the OpenAI-compatible API over one run's model.
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <csignal>
#include <thread>

#include "commands.h"
#include "qkv/serve/model_service.h"
#include "qkv/serve/server.h"

namespace qkv::cli {

int run_serve(const ServeArgs& args) {
  // SIGINT and SIGTERM go to one thread that stops the server: blocked here, before any other
  // thread starts, so every thread inherits the mask and none is interrupted mid-request.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  start_runtime(args.threads, CoreOwner::kBlas);  // as `qkv generate`: the same numbers
  ModelService service(args.checkpoint);
  Server server(service, args.server);
  const int port = server.bind();
  const auto& o = args.server;
  if (o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1")
    spdlog::warn("listening on {}, not only on this machine's loopback: others can reach it{}",
                 o.host, o.api_key.empty() ? ", with no API key" : "");
  spdlog::info("serving {} at http://{}:{}/ (explorer), /v1/completions, /v1/models",
               service.model_id(), o.host, port);

  std::thread stopper([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    if (signal != 0) spdlog::info("{}: stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  server.listen();
  // listen() also returns when the socket fails: wake the stopper so it can be joined.
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace qkv::cli
