// A blocking HTTPS/1.1 client for the API server tests: verifies the
// server's certificate against the generated CA and sends the bearer token,
// as kubectl does. Watch streams are read line by line.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice::server::testing {

struct HttpResponse {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  nlohmann::json json() const;
  std::string header(const std::string& name) const;
};

class HttpsClient {
 public:
  HttpsClient(std::string host, uint16_t port, std::string caPem, std::string token);
  ~HttpsClient();

  HttpResponse request(const std::string& method, const std::string& target, const std::string& body = "",
                       const std::string& contentType = "application/json", const std::string& accept = "application/json");
  HttpResponse get(const std::string& target) { return request("GET", target); }
  HttpResponse post(const std::string& target, const nlohmann::json& body) { return request("POST", target, body.dump()); }
  HttpResponse put(const std::string& target, const nlohmann::json& body) { return request("PUT", target, body.dump()); }
  HttpResponse del(const std::string& target) { return request("DELETE", target); }
  HttpResponse patch(const std::string& target, const nlohmann::json& body, const std::string& type) {
    return request("PATCH", target, body.dump(), type);
  }

  // GET whose body is handed to `onData` as it arrives, never held whole
  // (large lists); returns the HTTP status, 0 if the response broke off.
  int getStreaming(const std::string& target, const std::string& accept,
                   const std::function<void(std::string_view)>& onData);

  // Opens a watch and returns each event (one JSON line) until `onEvent`
  // returns false, the stream ends, or `timeout` passes. Returns the HTTP
  // status of the stream.
  int watch(const std::string& target, const std::function<bool(const nlohmann::json&)>& onEvent,
            std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One raw TLS connection, for requests written piece by piece (a body that
// never ends, half a header) and answers read back as they arrive.
class TlsConnection {
 public:
  // Connects and completes the handshake (verifying the server against
  // `caPem`); ok() is false if either failed.
  TlsConnection(const std::string& host, uint16_t port, const std::string& caPem);
  ~TlsConnection();
  bool ok() const;
  bool write(const std::string& bytes);
  // Reads one HTTP response; status 0 if none arrived within `timeout`.
  HttpResponse readResponse(std::chrono::milliseconds timeout);
  // True if the server closed the connection within `timeout` (EOF, reset
  // or a TLS close), false if it is still open then.
  bool closedByPeer(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A plain TCP connection to host:port (no TLS): -1 on failure. The caller
// closes it.
int connectTcp(const std::string& host, uint16_t port);
// True if the peer closed `fd` (EOF or reset) within `timeout`.
bool tcpClosedByPeer(int fd, std::chrono::milliseconds timeout);

}  // namespace sluice::server::testing
