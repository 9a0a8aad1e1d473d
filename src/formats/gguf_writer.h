// Writes GGUF v3 files: used by `pareto convert` and by tests that generate random-weight models of
// any shape and tensor type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/tensor_type.h"
#include "formats/model_file.h"

namespace pareto::formats {

class GgufWriter {
 public:
  void set(std::string key, Value value);  // keeps insertion order; replaces an existing key
  // `data` holds the tensor's bytes in its type's block layout; its size must match the shape.
  Status add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                    std::vector<uint8_t> data);
  // Writes to `path` (via a temporary file renamed into place, so a failure leaves no partial
  // file).
  Status write(const std::string& path) const;
  // Copies every metadata entry and tensor of an opened model (used by convert).
  Status add_model(const ModelFile& model);

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  Metadata metadata_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace pareto::formats
