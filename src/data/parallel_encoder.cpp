#include "qkv/data/parallel_encoder.h"

#include "qkv/data/text_chunk_reader.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace qkv {

void encode_file_in_parallel(const Tokenizer& tokenizer, const std::string& path, int64_t begin,
                             int64_t end, const ParallelEncoderOptions& options,
                             const EncodedChunkSink& sink) {
  const int threads = options.threads > 0 ? options.threads
                                          : int(std::max(1u, std::thread::hardware_concurrency()));
  TextChunkReader reader(path, begin, end, options.chunk_bytes);
  // Rounds: read up to 2 x threads chunks, encode them on the threads (each takes the next
  // unclaimed chunk), hand them over in order. Two per thread evens out chunks of unequal cost.
  // The workers live for the whole call: threads started anew each round got fresh malloc
  // arenas, and peak memory went from 0.42 to 2.3 GB on a 111 MB corpus.
  std::vector<std::string> text(size_t(2 * threads));
  std::vector<std::vector<TokenId>> ids(text.size());
  std::vector<std::exception_ptr> errors(text.size());
  std::mutex mutex;
  std::condition_variable wake, finished;
  size_t n = 0, round = 0;
  int busy = 0;
  bool stop = false;
  std::atomic<size_t> next{0};
  auto encode_claimed = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        ids[i] = tokenizer.encode_from(text[i], path);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  auto worker = [&] {
    size_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return stop || round != seen; });
        if (stop) return;
        seen = round;
      }
      encode_claimed();
      std::lock_guard<std::mutex> lock(mutex);
      if (--busy == 0) finished.notify_one();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  auto stop_pool = [&] {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    wake.notify_all();
    for (auto& t : pool) t.join();
  };
  try {
    for (;;) {
      size_t filled = 0;
      while (filled < text.size() && reader.next(&text[filled])) ++filled;
      if (filled == 0) break;
      {
        std::lock_guard<std::mutex> lock(mutex);
        n = filled;
        next = 0;
        busy = int(pool.size());
        ++round;
      }
      wake.notify_all();
      encode_claimed();  // the calling thread works too
      {
        std::unique_lock<std::mutex> lock(mutex);
        finished.wait(lock, [&] { return busy == 0; });
      }
      for (size_t i = 0; i < filled; ++i) {
        if (errors[i]) std::rethrow_exception(errors[i]);
        sink(ids[i], int64_t(text[i].size()));
      }
    }
  } catch (...) {
    stop_pool();
    throw;
  }
  stop_pool();
}

}  // namespace qkv
