#include "bench/spec_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "decoding/strategy.h"
#include "pareto/pareto.h"

namespace pareto::bench {
namespace {

using Json = nlohmann::ordered_json;

void finish_rates(SpecResult& r) {
  r.tok_per_s = r.seconds > 0 ? static_cast<double>(r.generated) / r.seconds : 0.0;
  r.mean_accepted =
      r.spec.steps > 0 ? static_cast<double>(r.spec.accepted) / r.spec.steps + 1.0 : 0.0;
  r.acceptance_rate =
      r.spec.drafted > 0 ? static_cast<double>(r.spec.accepted) / r.spec.drafted : 0.0;
}

void add_counts(std::vector<int64_t>& into, const std::vector<int64_t>& counts) {
  if (into.size() < counts.size()) into.resize(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) into[i] += counts[i];
}

void add_stats(SpeculationStats& into, const SpeculationStats& from) {
  into.steps += from.steps;
  into.drafted += from.drafted;
  into.accepted += from.accepted;
  into.draft_seconds += from.draft_seconds;
  into.verify_seconds += from.verify_seconds;
  add_counts(into.drafted_at, from.drafted_at);
  add_counts(into.accepted_at, from.accepted_at);
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

Result<std::vector<WorkloadItem>> read_workload(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(path, ": cannot open the workload file");
  std::vector<WorkloadItem> items;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return make_error(path, ":", n, ": not a JSON object");
    }
    WorkloadItem item;
    if (!j.contains("prompt") || !j["prompt"].is_string()) {
      return make_error(path, ":", n, ": \"prompt\" must be a string");
    }
    item.prompt = j["prompt"].get<std::string>();
    if (!j.contains("max_tokens") || !j["max_tokens"].is_number_integer() ||
        j["max_tokens"].get<int64_t>() < 1 || j["max_tokens"].get<int64_t>() > (1 << 20)) {
      return make_error(path, ":", n, ": \"max_tokens\" must be an integer in [1, 1048576]");
    }
    item.max_tokens = j["max_tokens"].get<int>();
    item.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>()
                                                      : "line-" + std::to_string(n);
    items.push_back(std::move(item));
  }
  if (items.empty()) return make_error(path, ": the workload has no requests");
  return items;
}

Result<SpecBenchReport> run_spec_bench(const SpecBenchOptions& o) {
  if (o.workloads.empty()) return make_error("bench spec: no workload given (--workload FILE)");
  if (o.repetitions < 1) return make_error("bench spec: repetitions must be >= 1");
  std::vector<std::string> strategies = o.strategies;
  if (strategies.empty()) {
    for (std::string_view name : decoding::strategy_names()) {
      if (name == "autoregressive") continue;
      if ((name.starts_with("draft") || name == "tree") && o.draft.empty()) continue;
      strategies.emplace_back(name);
    }
  }
  for (const std::string& s : strategies) {
    if (s == "autoregressive") {
      return make_error("bench spec: autoregressive is the baseline; list speculative strategies");
    }
    const auto known = decoding::strategy_names();
    if (s.find(',') == std::string::npos &&
        std::find(known.begin(), known.end(), s) == known.end()) {
      // The registry's error lists the valid names.
      return tl::unexpected<Error>(decoding::make_strategy(s).error());
    }
    if ((s.find("draft") != std::string::npos || s.find("tree") != std::string::npos) &&
        o.draft.empty()) {
      return make_error("bench spec: strategy '", s, "' needs a draft model (--draft-model)");
    }
  }
  std::vector<std::pair<std::string, std::vector<WorkloadItem>>> workloads;
  for (const std::string& path : o.workloads) {
    PARETO_TRY(auto items, read_workload(path));
    if (o.max_prompts > 0 && static_cast<int>(items.size()) > o.max_prompts) {
      items.resize(static_cast<size_t>(o.max_prompts));
    }
    workloads.emplace_back(std::filesystem::path(path).stem().string(), std::move(items));
  }
  LoadOptions lo;
  lo.n_threads = o.threads;
  lo.max_sequences = 1;
  lo.batch_invariant = o.batch_invariant;
  lo.cache_type_k = lo.cache_type_v = o.cache_type;
  lo.draft_model_path = o.draft;
  lo.draft_weight_type = o.draft_type;
  lo.sam_corpus_files = o.sam_corpus;
  lo.draft_max = o.draft_max;
  lo.fixed_draft_length = o.fixed_draft_length;

  SpecBenchReport report;
  report.target = o.target;
  report.draft = o.draft;
  report.draft_type = o.draft_type;
  report.threads = o.threads;
  report.batch_invariant = o.batch_invariant;
  // [strategy index (0: plain)][workload index] totals.
  std::vector<std::string> names = {"autoregressive"};
  names.insert(names.end(), strategies.begin(), strategies.end());
  std::vector<std::vector<SpecResult>> totals(names.size(),
                                              std::vector<SpecResult>(workloads.size()));
  for (int rep = 0; rep < o.repetitions; ++rep) {
    // A fresh engine per repetition: what a strategy learns across requests (its n-gram cache
    // above all) would otherwise hold each prompt's answer from the repetition before.
    PARETO_TRY(auto engine, Engine::load(o.target, lo));
    if (!workloads.empty()) {
      // Untimed: the first forwards of a fresh engine fault the mapped weights in.
      GenerateParams warm;
      warm.temperature = 0;
      warm.max_tokens = 4;
      warm.strategy = "autoregressive";
      const auto warmed = engine->generate(workloads.front().second.front().prompt, warm);
      if (!warmed) return make_error("bench spec: warm-up: ", warmed.error().message);
    }
    for (size_t w = 0; w < workloads.size(); ++w) {
      for (const WorkloadItem& item : workloads[w].second) {
        if (rep == 0) ++report.prompts;
        std::vector<int32_t> plain_tokens;
        for (size_t s = 0; s < names.size(); ++s) {
          GenerateParams p;
          p.temperature = 0;  // greedy: outputs comparable token for token
          p.max_tokens = o.max_tokens > 0 ? o.max_tokens : item.max_tokens;
          p.strategy = names[s];
          auto g = engine->generate(item.prompt, p);
          if (!g) {
            return make_error("bench spec: ", names[s], " on ", workloads[w].first, "/", item.id,
                              ": ", g.error().message);
          }
          SpecResult& t = totals[s][w];
          t.generated += g->stats.generated_tokens;
          t.seconds += g->stats.generate_seconds;
          add_stats(t.spec, g->stats.speculation);
          if (s == 0) {
            plain_tokens = g->tokens;
          } else if (g->tokens != plain_tokens) {
            t.identical = false;
            if (rep == 0) t.differing.push_back(item.id);
          }
        }
      }
    }
  }
  for (size_t s = 0; s < names.size(); ++s) {
    SpecResult all;
    all.name = names[s];
    all.workload = "all";
    std::vector<SpecResult> rows;
    for (size_t w = 0; w < workloads.size(); ++w) {
      SpecResult r = totals[s][w];
      r.name = names[s];
      r.workload = workloads[w].first;
      finish_rates(r);
      r.speedup = s == 0 ? 1.0 : r.tok_per_s / report.baseline[w].tok_per_s;
      all.generated += r.generated;
      all.seconds += r.seconds;
      add_stats(all.spec, r.spec);
      all.identical = all.identical && r.identical;
      all.differing.insert(all.differing.end(), r.differing.begin(), r.differing.end());
      if (s == 0) report.baseline.push_back(r);
      rows.push_back(r);
    }
    finish_rates(all);
    if (s == 0) {
      all.speedup = 1.0;
      report.baseline.push_back(all);
      continue;
    }
    all.speedup = all.tok_per_s / report.baseline.back().tok_per_s;
    report.results.insert(report.results.end(), rows.begin(), rows.end());
    report.results.push_back(all);
  }
  return report;
}

// The cost model: a verification gains mean_accepted tokens and costs its draft time plus its
// verify time; plain decoding costs t_plain per token. Predicted speed-up =
// mean_accepted * t_plain / (draft + verify per verification). The rest of the measured time
// (sampling, bookkeeping) is what the prediction leaves out.
double predicted_speedup(const SpecResult& x, const SpecBenchReport& r) {
  const SpecResult* plain = nullptr;
  for (const SpecResult& b : r.baseline) {
    if (b.workload == x.workload) plain = &b;
  }
  if (plain == nullptr || x.spec.steps == 0 || plain->generated == 0) return 0.0;
  const double t_plain = plain->seconds / static_cast<double>(plain->generated);
  const double per_step =
      (x.spec.draft_seconds + x.spec.verify_seconds) / static_cast<double>(x.spec.steps);
  return per_step > 0 ? x.mean_accepted * t_plain / per_step : 0.0;
}

std::string format_spec_markdown(const SpecBenchReport& r) {
  std::ostringstream out;
  out << "target " << r.target << (r.draft.empty() ? "" : ", draft " + r.draft)
      << (r.draft_type.empty() ? "" : " (converted to " + r.draft_type + ")") << ", " << r.prompts
      << " prompts, greedy, " << (r.batch_invariant ? "batch-invariant" : "llama.cpp")
      << " order\n\n";
  out << "| strategy | workload | tok/s | speed-up | tokens/verification | acceptance | draft s "
         "| verify s | identical | model |\n|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n";
  const bool several = r.baseline.size() > 2;
  const auto row = [&](const SpecResult& x) {
    if (!several && x.workload != "all") return;
    out << "| " << x.name << " | " << x.workload << " | " << fixed(x.tok_per_s, 1) << " | "
        << fixed(x.speedup, 2) << "x | " << (x.spec.steps > 0 ? fixed(x.mean_accepted, 2) : "-")
        << " | " << (x.spec.drafted > 0 ? fixed(100 * x.acceptance_rate, 1) + "%" : "-") << " | "
        << fixed(x.spec.draft_seconds, 3) << " | " << fixed(x.spec.verify_seconds, 3) << " | "
        << (x.name == "autoregressive" ? "-"
            : x.identical              ? "yes"
                                       : "NO")
        << " | " << (x.spec.steps > 0 ? fixed(predicted_speedup(x, r), 2) + "x" : "-") << " |\n";
  };
  for (const SpecResult& x : r.baseline) row(x);
  for (const SpecResult& x : r.results) row(x);
  out << "\nmodel: tokens/verification x plain seconds per token / (draft + verify seconds per "
         "verification)\n";
  for (const SpecResult& x : r.results) {
    if (x.workload == "all" && !x.identical) {
      out << "\n" << x.name << ": output differs from plain decoding on";
      for (const std::string& id : x.differing) out << " " << id;
      out << "\n";
    }
  }
  return out.str();
}

std::string format_spec_json(const SpecBenchReport& r) {
  const auto item = [](const SpecResult& x) {
    Json j = {{"name", x.name},
              {"tok_per_s", x.tok_per_s},
              {"speedup", x.speedup},
              {"mean_accepted", x.mean_accepted},
              {"acceptance_rate", x.acceptance_rate},
              {"identical_to_baseline", x.identical},
              {"generated_tokens", x.generated},
              {"decode_seconds", x.seconds},
              {"verifications", x.spec.steps},
              {"drafted", x.spec.drafted},
              {"accepted", x.spec.accepted},
              {"draft_seconds", x.spec.draft_seconds},
              {"verify_seconds", x.spec.verify_seconds}};
    // Time split: drafting, verifying (the target forwards), and the rest (sampling, streaming,
    // bookkeeping) of the decode time.
    j["other_seconds"] = std::max(0.0, x.seconds - x.spec.draft_seconds - x.spec.verify_seconds);
    Json by_position = Json::array();
    for (size_t i = 0; i < x.spec.drafted_at.size(); ++i) {
      by_position.push_back(x.spec.drafted_at[i] > 0 ? static_cast<double>(x.spec.accepted_at[i]) /
                                                           static_cast<double>(x.spec.drafted_at[i])
                                                     : 0.0);
    }
    j["acceptance_by_position"] = by_position;
    j["draft_seconds_per_token"] = x.spec.drafted > 0 ? x.spec.draft_seconds / x.spec.drafted : 0.0;
    j["verify_seconds_per_verification"] =
        x.spec.steps > 0 ? x.spec.verify_seconds / x.spec.steps : 0.0;
    if (!x.differing.empty()) j["differing_prompts"] = x.differing;
    return j;
  };
  Json strategies = Json::array(), workloads = Json::array();
  for (const SpecResult& x : r.results) {
    if (x.workload != "all") continue;
    strategies.push_back(item(x));
    strategies.back()["model_speedup"] = predicted_speedup(x, r);
  }
  for (size_t w = 0; w + 1 < r.baseline.size(); ++w) {
    Json ws = Json::array();
    for (const SpecResult& x : r.results) {
      if (x.workload == r.baseline[w].workload) ws.push_back(item(x));
    }
    workloads.push_back({{"workload", r.baseline[w].workload},
                         {"baseline", {{"tok_per_s", r.baseline[w].tok_per_s}}},
                         {"strategies", ws}});
  }
  const Json out = {{"target", r.target},
                    {"draft", r.draft},
                    {"draft_type", r.draft_type},
                    {"threads", r.threads},
                    {"prompts", r.prompts},
                    {"batch_invariant", r.batch_invariant},
                    {"baseline",
                     {{"tok_per_s", r.baseline.back().tok_per_s},
                      {"generated_tokens", r.baseline.back().generated},
                      {"decode_seconds", r.baseline.back().seconds}}},
                    {"strategies", strategies},
                    {"workloads", workloads}};
  return out.dump(2);
}

std::string format_spec_svg(const SpecBenchReport& r) {
  // Groups: one per strategy; bars: one per workload (and "all" when several).
  std::vector<std::string> names, workloads;
  for (const SpecResult& x : r.results) {
    if (std::find(names.begin(), names.end(), x.name) == names.end()) names.push_back(x.name);
  }
  for (const SpecResult& x : r.baseline) {
    if (x.workload != "all" || r.baseline.size() > 2) workloads.push_back(x.workload);
  }
  std::map<std::pair<std::string, std::string>, double> speedup;
  double top = 1.0;
  for (const SpecResult& x : r.results) {
    speedup[{x.name, x.workload}] = x.speedup;
    top = std::max(top, x.speedup);
  }
  top = std::ceil(top * 2) / 2 + 0.5;
  const double width = 760, height = 420, left = 60, right = 20, bottom = 70, head = 50;
  const double plot_w = width - left - right, plot_h = height - head - bottom;
  const double group_w = plot_w / std::max<size_t>(1, names.size());
  const double bar_w = group_w * 0.8 / std::max<size_t>(1, workloads.size());
  const char* colors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"};
  const auto y_of = [&](double v) { return head + plot_h * (1 - v / top); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n<text x=\""
    << width / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Speed-up over plain "
    << "greedy decoding (identical outputs marked =)</text>\n";
  for (double v = 0; v <= top + 1e-9; v += 0.5) {
    s << "<line x1=\"" << left << "\" x2=\"" << width - right << "\" y1=\"" << y_of(v) << "\" y2=\""
      << y_of(v) << "\" stroke=\"" << (v == 1.0 ? "#000" : "#ddd") << "\"/>\n"
      << "<text x=\"" << left - 6 << "\" y=\"" << y_of(v) + 4 << "\" text-anchor=\"end\">"
      << fixed(v, 1) << "x</text>\n";
  }
  for (size_t g = 0; g < names.size(); ++g) {
    const double x0 = left + g * group_w + group_w * 0.1;
    for (size_t w = 0; w < workloads.size(); ++w) {
      const auto it = speedup.find({names[g], workloads[w]});
      if (it == speedup.end()) continue;
      const double x = x0 + w * bar_w, y = y_of(it->second);
      bool same = true;
      for (const SpecResult& rr : r.results) {
        if (rr.name == names[g] && rr.workload == workloads[w]) same = rr.identical;
      }
      s << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << bar_w * 0.9 << "\" height=\""
        << head + plot_h - y << "\" fill=\"" << colors[w % 6] << "\"><title>" << names[g] << " / "
        << workloads[w] << ": " << fixed(it->second, 2) << "x</title></rect>\n<text x=\""
        << x + bar_w * 0.45 << "\" y=\"" << y - 4 << "\" text-anchor=\"middle\" font-size=\"10\">"
        << fixed(it->second, 2) << (same ? "=" : "!") << "</text>\n";
    }
    s << "<text x=\"" << left + g * group_w + group_w / 2 << "\" y=\"" << head + plot_h + 18
      << "\" text-anchor=\"middle\">" << names[g] << "</text>\n";
  }
  for (size_t w = 0; w < workloads.size(); ++w) {
    const double x = left + w * 150;
    s << "<rect x=\"" << x << "\" y=\"" << height - 30 << "\" width=\"12\" height=\"12\" fill=\""
      << colors[w % 6] << "\"/><text x=\"" << x + 16 << "\" y=\"" << height - 20 << "\">"
      << workloads[w] << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace pareto::bench
