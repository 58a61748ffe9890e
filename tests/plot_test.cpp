// Heatmaps and charts: valid PNG and SVG files of the predicted size whose pixels carry the
// weights; the attention table's text; the small pieces the report is made of.
#include <cairo.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "qkv/inspect/attention_map.h"
#include "qkv/inspect/attention_table.h"
#include "qkv/inspect/token_label.h"
#include "qkv/io/file_bytes.h"
#include "qkv/plot/attention_heatmap.h"
#include "qkv/plot/line_chart.h"
#include "qkv/report/base64.h"
#include "qkv/report/run_metrics.h"
#include "test_support.h"

namespace {

using qkv::testing::TempDir;

// A causal map of T tokens and H heads: query i spreads its weight evenly over keys 0..i,
// except head 0, query 0, which has all its weight on key 0 (as every causal head does).
qkv::AttentionMap uniform_causal_map(int64_t T, int64_t H) {
  qkv::AttentionMap m;
  m.n_layer = 1;
  m.n_head = H;
  for (int64_t i = 0; i < T; ++i) {
    m.tokens.push_back(std::string(1, static_cast<char>('a' + i % 26)));
    m.ids.push_back(static_cast<int32_t>(i));
  }
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) m.weights.push_back(j <= i ? 1.0f / float(i + 1) : 0.0f);
  return m;
}

uint32_t be32(const std::string& b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) |
         (uint32_t(uint8_t(b[at + 2])) << 8) | uint32_t(uint8_t(b[at + 3]));
}

// Width and height from the PNG header, after checking its signature.
std::pair<uint32_t, uint32_t> png_size(const std::string& png) {
  static const std::string kSignature = "\x89PNG\r\n\x1a\n";
  EXPECT_EQ(png.substr(0, 8), kSignature);
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  return {be32(png, 16), be32(png, 20)};
}

TEST(Heatmap, PngSizeFollowsTheTokenAndHeadCounts) {
  // Worked by hand from HeatmapLayout's constants: 5 tokens -> 480/5 = 96 px, capped at 32;
  // 4 heads -> a 2 x 2 grid; panel = 60 + 5 * 32 = 220 wide, 20 + 60 + 160 = 240 tall.
  // width = 2*16 + 2*220 + 24 + 24 + 64 = 584; height = 2*16 + 30 + 2*240 + 24 = 566.
  auto png = qkv::render_attention_heatmap(uniform_causal_map(5, 4), 0, qkv::ImageFormat::kPng);
  EXPECT_EQ(png_size(png), std::make_pair(584u, 566u));
  // 100 tokens, 1 head: 480/100 = 4 px, raised to the 6 px minimum; panel 60 + 600 = 660.
  // width = 32 + 660 + 24 + 64 = 780; height = 32 + 30 + 20 + 60 + 600 = 742.
  png = qkv::render_attention_heatmap(uniform_causal_map(100, 1), 0, qkv::ImageFormat::kPng);
  EXPECT_EQ(png_size(png), std::make_pair(780u, 742u));
  // One more token, 6 heads (3 x 2 grid): each of the 3 columns grows by one 6 px cell.
  auto a = png_size(
      qkv::render_attention_heatmap(uniform_causal_map(100, 6), 0, qkv::ImageFormat::kPng));
  auto b = png_size(
      qkv::render_attention_heatmap(uniform_causal_map(101, 6), 0, qkv::ImageFormat::kPng));
  EXPECT_EQ(b.first - a.first, 3u * 6u);
  EXPECT_EQ(b.second - a.second, 2u * 6u);
}

TEST(Heatmap, CellColoursAreTheWeightsOnTheViridisScale) {
  // matplotlib's viridis ends: #440154 and #fde725.
  EXPECT_EQ(qkv::viridis(0.0), 0x440154u);
  EXPECT_EQ(qkv::viridis(1.0), 0xFDE725u);
  const int64_t T = 5;
  const std::string png =
      qkv::render_attention_heatmap(uniform_causal_map(T, 4), 0, qkv::ImageFormat::kPng);
  // Decode with Cairo and read pixels near the corner of cells of head 1 (top-left panel).
  size_t offset = 0;
  auto read = [](void* closure, unsigned char* data, unsigned int length) {
    auto* ctx = static_cast<std::pair<const std::string*, size_t*>*>(closure);
    if (*ctx->second + length > ctx->first->size()) return CAIRO_STATUS_READ_ERROR;
    std::memcpy(data, ctx->first->data() + *ctx->second, length);
    *ctx->second += length;
    return CAIRO_STATUS_SUCCESS;
  };
  std::pair<const std::string*, size_t*> ctx{&png, &offset};
  cairo_surface_t* img = cairo_image_surface_create_from_png_stream(read, &ctx);
  ASSERT_EQ(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
  const auto l = qkv::HeatmapLayout::for_shape(T, 4);
  const int gx = qkv::HeatmapLayout::kMargin + qkv::HeatmapLayout::kLabel;
  const int gy = qkv::HeatmapLayout::kMargin + qkv::HeatmapLayout::kTitle +
                 qkv::HeatmapLayout::kHeadTitle + qkv::HeatmapLayout::kLabel;
  auto pixel = [&](int64_t row, int64_t col) {
    const unsigned char* data = cairo_image_surface_get_data(img);
    const int stride = cairo_image_surface_get_stride(img);
    const int x = gx + static_cast<int>(col) * l.cell + 3,
              y = gy + static_cast<int>(row) * l.cell + 3;
    uint32_t argb;
    std::memcpy(&argb, data + y * stride + x * 4, 4);
    return argb & 0xFFFFFFu;
  };
  EXPECT_EQ(pixel(0, 0), qkv::viridis(1.0));   // weight 1
  EXPECT_EQ(pixel(1, 0), qkv::viridis(0.5));   // weight 1/2
  EXPECT_EQ(pixel(3, 2), qkv::viridis(0.25));  // weight 1/4
  EXPECT_EQ(pixel(0, 4), 0xEEEEEEu);           // masked: grey, not the colour of 0
  EXPECT_NE(pixel(0, 4), qkv::viridis(0.0));
  cairo_surface_destroy(img);
}

TEST(Heatmap, WritesParseableSvgOfTheSameSizeForEveryLayer) {
  TempDir dir("svg");
  auto map = uniform_causal_map(5, 4);
  map.n_layer = 2;
  map.weights.insert(map.weights.end(), map.weights.begin(), map.weights.end());
  auto paths = qkv::write_attention_heatmaps(map, dir / "maps");
  ASSERT_EQ(paths.size(), 4u);  // layer1.png, layer1.svg, layer2.png, layer2.svg
  const std::string svg = dir / "maps/layer2.svg";
  // Parsed by Python's XML parser: an independent reader.
  auto r = qkv::testing::run_command(
      "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
      "print(r.tag.split('}')[-1], r.get('width'), r.get('height'))\" " +
      svg);
  if (r.exit_code == 127) GTEST_SKIP() << "python3 not available";
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "svg 584px 566px\n");
  EXPECT_EQ(png_size(qkv::read_file_bytes(dir / "maps/layer2.png")), std::make_pair(584u, 566u));
}

TEST(AttentionTable, BlanksTheMaskedFutureAndPrintsTwoDecimals) {
  const std::vector<float> w = {1.0f, 0, 0, 0.25f, 0.75f, 0, 0.2f, 0.3f, 0.5f};
  EXPECT_EQ(qkv::format_attention_table({"a", "\u2423", "cat"}, w),
            "        a     \u2423   cat\n"
            "a    1.00\n"
            "\u2423    0.25  0.75\n"
            "cat  0.20  0.30  0.50\n");
  // A weight above the diagonal that is not zero (a bidirectional model) is shown.
  const std::vector<float> open = {0.6f, 0.4f, 0.1f, 0.9f};
  EXPECT_EQ(qkv::format_attention_table({"x", "y"}, open),
            "      x     y\nx  0.60  0.40\ny  0.10  0.90\n");
}

TEST(TokenLabel, MakesWhitespaceAndControlBytesVisible) {
  EXPECT_EQ(qkv::token_label(" "), "\u2423");
  EXPECT_EQ(qkv::token_label("\n"), "\u21b5");
  EXPECT_EQ(qkv::token_label("a\tb"), "a\u21e5b");
  EXPECT_EQ(qkv::token_label("\x01"), "\\x01");
  EXPECT_EQ(qkv::token_label("\xE2\x82"), "\\xE2\\x82");  // half of a 3-byte character
  EXPECT_EQ(qkv::token_label("\u00e9t\u00e9"), "\u00e9t\u00e9");
  EXPECT_EQ(qkv::display_width("\u2423ab"), 3u);
  EXPECT_EQ(qkv::truncate_display("abcdefgh", 4), "abc\u2026");
}

TEST(LineChart, NiceTicksAndValidImages) {
  EXPECT_EQ(qkv::nice_ticks(0, 2000, 5), (std::vector<double>{0, 500, 1000, 1500, 2000}));
  // A range of 2.5 over 5 ticks wants a step of 0.5; of 2.6, a step over 0.5, so 1.
  EXPECT_EQ(qkv::nice_ticks(1.7, 4.3, 5), (std::vector<double>{2, 3, 4}));
  EXPECT_EQ(qkv::nice_ticks(1.7, 4.2, 5), (std::vector<double>{2, 2.5, 3, 3.5, 4}));
  std::vector<double> x, y;
  for (int i = 1; i <= 100; ++i) x.push_back(i), y.push_back(4.0 / i);
  qkv::LineChartOptions opts{"loss", "step", "loss", true, 400, 200};
  const auto png = qkv::render_line_chart({{"train", x, y}}, opts, qkv::ImageFormat::kPng);
  EXPECT_EQ(png_size(png), std::make_pair(400u, 200u));
  const auto svg = qkv::render_line_chart({}, opts, qkv::ImageFormat::kSvg);  // "no data"
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("width=\"400px\""), std::string::npos);
}

TEST(Base64, MatchesTheRfc4648TestVectors) {
  EXPECT_EQ(qkv::base64_encode(""), "");
  EXPECT_EQ(qkv::base64_encode("f"), "Zg==");
  EXPECT_EQ(qkv::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(qkv::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(qkv::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(qkv::base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(qkv::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(qkv::base64_encode(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(RunMetrics, ResumedStepsReplaceTheOnesAfterTheCheckpointAndATornLineIsSkipped) {
  TempDir dir("metrics");
  qkv::testing::write_file(dir / "m.jsonl",
                           R"({"type":"step","step":1,"loss":4.0,"lr":0.1,"ms":5,"tokens_per_s":10}
{"type":"step","step":2,"loss":3.0,"lr":0.2,"ms":5,"tokens_per_s":10}
{"type":"eval","step":2,"train_loss":2.9,"val_loss":3.1}
{"type":"step","step":3,"loss":2.5,"lr":0.3,"ms":5,"tokens_per_s":10}
{"type":"step","step":3,"loss":2.4,"lr":0.3,"ms":5,"tokens_per_s":10}
{"type":"step","step":4,"loss":2.)");
  auto m = qkv::RunMetrics::load(dir / "m.jsonl");
  ASSERT_EQ(m.steps.size(), 3u);
  EXPECT_EQ(m.steps[2].step, 3);
  EXPECT_DOUBLE_EQ(m.steps[2].loss, 2.4);  // the resumed run's record
  ASSERT_EQ(m.evals.size(), 1u);
  EXPECT_DOUBLE_EQ(m.evals[0].val_loss, 3.1);
  qkv::testing::write_file(dir / "bad.jsonl", "{\"type\":\"step\"}\nnot json\n{}\n");
  try {
    qkv::RunMetrics::load(dir / "bad.jsonl");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1"), std::string::npos) << e.what();
  }
}

}  // namespace
