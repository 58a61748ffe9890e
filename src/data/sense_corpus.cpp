#include "qkv/data/sense_corpus.h"

#include <filesystem>
#include <random>

#include "qkv/io/file_bytes.h"

namespace qkv {

namespace {

const std::vector<std::string> kDeterminers = {"the", "a", "this", "my"};

// Uniform in [0, n) from the generator's raw output: the same on every standard library (the
// std:: distributions are not).
size_t pick(std::mt19937_64& rng, size_t n) {
  return static_cast<size_t>(rng() % n);
}

}  // namespace

const std::vector<AmbiguousWord>& lecture_ambiguous_words() {
  static const std::vector<AmbiguousWord> words = {
      {"bank",
       {{"money",
         {"cash", "loan", "deposit", "credit", "mortgage", "payroll"},
         {"savings", "salary"},
         {"pays interest", "lends money", "charges fees", "approves loans"}},
        {"river",
         {"river", "stream", "muddy", "grassy", "canoe", "willow"},
         {"flood", "fishing"},
         {"floods often", "erodes slowly", "shelters frogs", "grows reeds"}}}},
      {"apple",
       {{"fruit",
         {"juicy", "ripe", "sweet", "orchard", "sliced", "baked"},
         {"crisp", "peeled"},
         {"tastes sweet", "ripens slowly", "feeds children", "rots quickly"}},
        {"company",
         {"tech", "stock", "software", "startup", "corporate", "silicon"},
         {"investor", "gadget"},
         {"sells phones", "hires engineers", "reports profits", "launches products"}}}},
      {"bat",
       {{"animal",
         {"cave", "vampire", "furry", "nocturnal", "winged", "sleepy"},
         {"hungry", "wild"},
         {"hunts insects", "flaps wings", "eats moths", "roosts upside"}},
        {"sport",
         {"cricket", "baseball", "wooden", "signed", "practice", "team"},
         {"aluminum", "spare"},
         {"hits balls", "cracks loudly", "scores runs", "swings hard"}}}},
      {"crane",
       {{"bird",
         {"wading", "marsh", "feathered", "migrating", "nesting", "graceful"},
         {"hooded", "sandhill"},
         {"eats fish", "flies south", "wades slowly", "nests nearby"}},
        {"machine",
         {"construction", "tower", "harbor", "diesel", "hydraulic", "rental"},
         {"mobile", "gantry"},
         {"lifts beams", "moves containers", "needs operators", "swings loads"}}}},
      {"spring",
       {{"season",
         {"warm", "early", "rainy", "april", "blooming", "sunny"},
         {"mild", "late"},
         {"brings rain", "melts snow", "warms fields", "wakes bees"}},
        {"coil",
         {"metal", "compressed", "mattress", "valve", "trigger", "coiled"},
         {"tension", "clock"},
         {"stores energy", "snaps back", "absorbs shocks", "pushes pistons"}}}},
  };
  return words;
}

SenseCorpus make_sense_corpus(uint64_t seed, int64_t lines) {
  std::mt19937_64 rng(seed);
  const auto& words = lecture_ambiguous_words();
  SenseCorpus out;
  for (int64_t i = 0; i < lines; ++i) {
    const auto& w = words[pick(rng, words.size())];
    const auto& sense = w.senses[pick(rng, w.senses.size())];
    const auto& det = kDeterminers[pick(rng, kDeterminers.size())];
    const auto& cont = sense.continuations[pick(rng, sense.continuations.size())];
    if (i % 2 == 0) {  // the ambiguous word after a training context word of its sense
      const auto& ctx = sense.contexts[pick(rng, sense.contexts.size())];
      out.corpus += det + " " + ctx + " " + w.word + " " + cont + " .\n";
    } else {  // a context word, held out or not, taught with its sense's continuation
      const size_t n = sense.contexts.size() + sense.held_out.size();
      const size_t k = pick(rng, n);
      const auto& ctx =
          k < sense.contexts.size() ? sense.contexts[k] : sense.held_out[k - sense.contexts.size()];
      out.corpus += det + " " + ctx + " " + cont + " .\n";
    }
  }
  for (const auto& w : words)
    for (const auto& sense : w.senses)
      for (const auto& ctx : sense.held_out)
        for (size_t d = 0; d < kDeterminers.size(); ++d) {
          const auto& cont = sense.continuations[d % sense.continuations.size()];
          out.probe += w.word + "\t" + sense.name + "\t" + kDeterminers[d] + " " + ctx + " " +
                       w.word + " " + cont + " .\n";
        }
  return out;
}

std::string sense_probe_path(const std::string& corpus_path) {
  return std::filesystem::path(corpus_path).replace_extension(".probe.tsv").string();
}

void write_sense_corpus_if_missing(const std::string& corpus_path, uint64_t seed) {
  if (std::filesystem::exists(corpus_path)) return;
  const auto parent = std::filesystem::path(corpus_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const auto made = make_sense_corpus(seed);
  write_file_atomically(sense_probe_path(corpus_path), made.probe);
  write_file_atomically(corpus_path, made.corpus);
}

}  // namespace qkv
