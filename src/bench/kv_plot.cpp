// `pareto bench kv --plot`: each policy's quality (top-1 agreement with the full cache) against
// the KV memory it keeps (bytes per token seen), one line per policy: its frontier.
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench/kv_bench.h"

namespace pareto::bench {

std::string format_kv_svg(const KvBenchReport& r) {
  std::map<std::string, std::vector<const KvBenchRow*>> lines;
  std::vector<std::string> order;
  double x_max = 1, y_min = 1;
  for (const KvBenchRow& x : r.rows) {
    if (lines.find(x.policy) == lines.end()) order.push_back(x.policy);
    lines[x.policy].push_back(&x);
    x_max = std::max({x_max, x.kv_bytes_per_token, x.kv_bytes_per_token_full});
    y_min = std::min(y_min, x.top1_agreement);
  }
  y_min = std::max(0.0, std::floor(y_min * 20 - 1) / 20);  // a 0.05 step below the lowest
  const double width = 760, height = 460, left = 70, right = 150, bottom = 60, head = 50;
  const double plot_w = width - left - right, plot_h = height - head - bottom;
  const auto x_of = [&](double v) { return left + plot_w * v / x_max; };
  const auto y_of = [&](double v) { return head + plot_h * (1 - (v - y_min) / (1 - y_min)); };
  const char* colors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1"};
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n<text x=\""
    << (left + plot_w / 2) << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Top-1 "
    << "agreement with the full cache against KV memory (" << r.context
    << "-token windows)</text>\n";
  for (double v = y_min; v <= 1.0 + 1e-9; v += 0.05) {
    s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y_of(v) << "\" y2=\""
      << y_of(v) << "\" stroke=\"#ddd\"/>\n<text x=\"" << left - 6 << "\" y=\"" << y_of(v) + 4
      << "\" text-anchor=\"end\">" << std::lround(v * 100) << "%</text>\n";
  }
  for (int i = 0; i <= 4; ++i) {
    const double v = x_max * i / 4;
    s << "<text x=\"" << x_of(v) << "\" y=\"" << head + plot_h + 18 << "\" text-anchor=\"middle\">"
      << std::lround(v) << "</text>\n";
  }
  s << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << height - 15
    << "\" text-anchor=\"middle\">KV bytes held per token seen (full cache: the right "
       "edge)</text>\n";
  for (size_t p = 0; p < order.size(); ++p) {
    std::vector<const KvBenchRow*>& pts = lines[order[p]];
    std::sort(pts.begin(), pts.end(), [](const KvBenchRow* a, const KvBenchRow* b) {
      return a->kv_bytes_per_token < b->kv_bytes_per_token;
    });
    s << "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" << colors[p % 6] << "\" points=\"";
    for (const KvBenchRow* x : pts)
      s << x_of(x->kv_bytes_per_token) << "," << y_of(x->top1_agreement) << " ";
    s << "\"/>\n";
    for (const KvBenchRow* x : pts) {
      s << "<circle r=\"3\" fill=\"" << colors[p % 6] << "\" cx=\"" << x_of(x->kv_bytes_per_token)
        << "\" cy=\"" << y_of(x->top1_agreement) << "\"><title>" << x->policy << " "
        << std::lround(x->budget * 100) << "%: top-1 " << x->top1_agreement << ", KL " << x->kl
        << "</title></circle>\n";
    }
    s << "<rect x=\"" << left + plot_w + 15 << "\" y=\"" << head + 20 * p << "\" width=\"12\" "
      << "height=\"12\" fill=\"" << colors[p % 6] << "\"/><text x=\"" << left + plot_w + 32
      << "\" y=\"" << head + 20 * p + 11 << "\">" << order[p] << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace pareto::bench
