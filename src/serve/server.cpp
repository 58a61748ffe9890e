#include "qkv/serve/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <strings.h>

#include <chrono>
#include <random>
#include <set>
#include <stdexcept>

#include "qkv/serve/request_error.h"
#include "request_fields.h"
#include "web_assets.h"

namespace qkv {

namespace {

using nlohmann::json;
using namespace request;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const char* error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 405:
      return "method_not_allowed";
    case 413:
      return "request_too_large";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

json error_body(int status, const std::string& message) {
  return {{"error", {{"message", message}, {"type", error_type(status)}, {"code", status}}}};
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(dump(error_body(status, message)), "application/json");
}

std::string completion_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  char buf[32];
  std::snprintf(buf, sizeof buf, "cmpl-%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Thrown from a stream's callback when the client has gone: ends the generation early.
struct ClientGone {};

}  // namespace

struct Server::Impl {
  ModelService& service;
  ServerOptions options;
  httplib::Server http;
  // Routes and the methods they answer, for telling 405 from 404.
  std::map<std::string, std::set<std::string>> routes;

  Impl(ModelService& s, ServerOptions o) : service(s), options(std::move(o)) {}

  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  // Every handler runs inside this: RequestError becomes its 4xx; anything else a 500 with its
  // message (the server keeps serving either way).
  Handler guarded(Handler handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        if (!authorised(req)) {
          res.set_header("WWW-Authenticate", "Bearer");
          return send_error(res, 401, "a valid Authorization: Bearer key is required");
        }
        handler(req, res);
      } catch (const RequestError& e) {
        send_error(res, e.status(), e.what());
      } catch (const std::exception& e) {
        spdlog::error("{} {}: {}", req.method, req.path, e.what());
        send_error(res, 500, e.what());
      }
    };
  }

  bool authorised(const httplib::Request& req) const {
    if (options.api_key.empty()) return true;
    if (req.path.rfind("/v1/", 0) != 0 && req.path.rfind("/api/", 0) != 0) return true;
    return req.get_header_value("Authorization") == "Bearer " + options.api_key;
  }

  void get(const std::string& path, Handler h) {
    routes[path].insert("GET");
    http.Get(path, guarded(std::move(h)));
  }
  void post(const std::string& path, Handler h) {
    routes[path].insert("POST");
    http.Post(path, guarded(std::move(h)));
  }

  static json body_of(const httplib::Request& req) { return parse_json_body(req.body); }

  static void reply(httplib::Response& res, const json& j) {
    res.set_content(dump(j), "application/json");
  }

  void add_page() {
    for (const auto& asset : web_assets()) {
      auto serve = [asset](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(asset.body), std::string(asset.content_type));
      };
      get(std::string(asset.path), serve);
      if (asset.path == "/explorer.html") get("/", serve);
    }
  }

  void add_explorer_api() {
    get("/api/info",
        [this](const httplib::Request&, httplib::Response& res) { reply(res, service.info()); });
    post("/api/attention", [this](const httplib::Request& req, httplib::Response& res) {
      const auto b = body_of(req);
      reply(res, service.attention(text(required(b, "text"), "text"), text(b, "checkpoint", "")));
    });
    post("/api/explain", [this](const httplib::Request& req, httplib::Response& res) {
      const auto b = body_of(req);
      reply(res, service.explain(text(required(b, "text"), "text"), text(b, "checkpoint", ""),
                                 integer(required(b, "layer"), "layer"),
                                 integer(required(b, "head"), "head"),
                                 integer(required(b, "query"), "query")));
    });
    post("/api/next", [this](const httplib::Request& req, httplib::Response& res) {
      const auto b = body_of(req);
      reply(res, service.next_tokens(text(required(b, "text"), "text"), text(b, "checkpoint", ""),
                                     number(b, "temperature", 1.0), integer(b, "top", 10)));
    });
    post("/api/embed", [this](const httplib::Request& req, httplib::Response& res) {
      const auto b = body_of(req);
      reply(res, service.embed(texts(b, "senses"), texts(b, "sentences"),
                               text(required(b, "word"), "word"), text(b, "checkpoint", "")));
    });
  }

  void add_openai_api() {
    get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json data = json::array();
      for (const auto& id : service.model_ids())
        data.push_back({{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "qkv"}});
      reply(res, {{"object", "list"}, {"data", std::move(data)}});
    });
    post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      const auto request = CompletionRequest::parse(body_of(req), options.max_tokens);
      const std::string model = request.model.empty() ? service.model_id() : request.model;
      const std::string id = completion_id();
      const int64_t created = unix_seconds();
      if (!request.stream) {
        const auto out = service.complete(request);
        return reply(
            res, completion_response(id, created, model, out.text, out.finish_reason, out.usage));
      }
      service.check(request);  // a bad prompt is a 400, not an error inside a 200 stream
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", [this, request, model, id, created](
                                                                size_t, httplib::DataSink& sink) {
        auto send = [&sink](const json& j) {
          const std::string event = "data: " + dump(j) + "\n\n";
          if (!sink.write(event.data(), event.size())) throw ClientGone{};
        };
        try {
          const auto out = service.complete(request, [&](const std::string& piece) {
            send(completion_chunk(id, created, model, piece, ""));
          });
          send(completion_chunk(id, created, model, "", out.finish_reason));
          if (request.include_usage)
            send({{"id", id},
                  {"object", "text_completion"},
                  {"created", created},
                  {"model", model},
                  {"choices", json::array()},
                  {"usage", usage_json(out.usage)}});
          const std::string done = "data: [DONE]\n\n";
          sink.write(done.data(), done.size());
        } catch (const ClientGone&) {
          spdlog::info("POST /v1/completions: the client left mid-stream");
        } catch (const std::exception& e) {
          spdlog::error("POST /v1/completions stream: {}", e.what());
          try {
            send(error_body(500, e.what()));
          } catch (const ClientGone&) {
          }
        }
        sink.done();
        return true;
      });
    });
  }

  // Unknown paths: 404; a known path with another method: 405 (httplib alone answers 404).
  void add_fallbacks() {
    auto fallback = [this](const httplib::Request& req, httplib::Response& res) {
      auto it = routes.find(req.path);
      if (it == routes.end()) return send_error(res, 404, "no route " + req.path);
      std::string allowed;
      for (const auto& m : it->second) allowed += (allowed.empty() ? "" : ", ") + m;
      res.set_header("Allow", allowed);
      send_error(res, 405, req.method + " " + req.path + ": allowed " + allowed);
    };
    http.Get(".*", fallback);
    http.Post(".*", fallback);
    http.Put(".*", fallback);
    http.Delete(".*", fallback);
    http.Patch(".*", fallback);
    http.Options(".*", fallback);
    // What httplib refuses before a handler runs (a body over the limit: 413, a malformed
    // request line: 400) gets the same JSON shape.
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413)
        return send_error(res, 413,
                          "the body is larger than the server's limit of " +
                              std::to_string(options.max_body_bytes) + " bytes");
      send_error(res, res.status,
                 "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path);
    });
    // httplib compresses with the best encoding a client accepts, and brotli at its default
    // quality spent 2 s on an 850 KB attention answer (gzip: tens of ms). The request is the
    // server's own object, handed to handlers as const: brotli is struck from what it accepts.
    http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
      for (auto& [name, value] : const_cast<httplib::Request&>(req).headers)
        if (strcasecmp(name.c_str(), "Accept-Encoding") == 0)
          for (auto at = value.find("br"); at != std::string::npos; at = value.find("br"))
            value.replace(at, 2, "identity");
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      spdlog::info("{} {} {}", req.method, req.path, res.status);
    });
  }
};

Server::Server(ModelService& service, ServerOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(options))) {
  auto& http = impl_->http;
  const int threads = impl_->options.connection_threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(impl_->options.max_body_bytes);
  impl_->add_page();
  impl_->add_explorer_api();
  impl_->add_openai_api();
  impl_->add_fallbacks();
}

Server::~Server() = default;

int Server::bind() {
  auto& o = impl_->options;
  const int port = o.port == 0 ? impl_->http.bind_to_any_port(o.host)
                               : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0)
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (in use, or not an address of this machine)");
  return port;
}

void Server::listen() {
  impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->http.stop();
}

}  // namespace qkv
