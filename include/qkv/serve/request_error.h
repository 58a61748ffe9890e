#pragma once

#include <stdexcept>
#include <string>

namespace qkv {

// A request the server cannot answer as asked: an HTTP status (4xx) and one line saying which
// field or route was wrong and what was expected. The server answers it as JSON and keeps serving.
class RequestError : public std::runtime_error {
 public:
  RequestError(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace qkv
