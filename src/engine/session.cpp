#include "engine/session.h"

#include <algorithm>
#include <thread>

#include "base/check.h"

namespace pareto::engine {

Result<std::unique_ptr<Session>> Session::open(const std::string& model_path,
                                               const SessionOptions& options) {
  PARETO_TRY(formats::ModelFile file, formats::open_model_file(model_path, options.tokenizer_path));
  auto shared_file = std::make_shared<const formats::ModelFile>(std::move(file));
  PARETO_TRY(tokenizer::Tokenizer tok,
             tokenizer::Tokenizer::from_metadata(shared_file->metadata()));
  std::unique_ptr<Session> session(new Session(shared_file, std::move(tok)));
  if (options.vocab_only) return session;

  if (shared_file->tensors().empty()) {
    return make_error(model_path, ": the file has no tensors (a vocabulary-only file?); ",
                      "it can be tokenized but not run");
  }
  PARETO_TRY(session->model_, model::Model::load(shared_file, options.model));
  const int trained = session->model_->config().context_length;
  if (options.context_length > 0) {
    session->context_length_ = options.context_length;
  } else {
    session->context_length_ =
        trained > 0 ? std::min(trained, kDefaultContextCap) : kDefaultContextCap;
  }
  const int threads = options.n_threads > 0
                          ? options.n_threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  session->pool_ = std::make_unique<ThreadPool>(threads);
  return session;
}

const model::Model& Session::model() const {
  PARETO_CHECK_MSG(model_ != nullptr, "Session opened vocab_only has no model");
  return *model_;
}

ThreadPool& Session::pool() {
  PARETO_CHECK_MSG(pool_ != nullptr, "Session opened vocab_only has no thread pool");
  return *pool_;
}

}  // namespace pareto::engine
