// pt2kit_runner: run an AOTInductor package without Python.
//
//   pt2kit_runner MODEL.aoti.pt2 INPUTS.pt OUTPUTS.pt [--device-index N] [--repeat N]
//
// INPUTS.pt is what Python's `torch.save(...)` writes: either a dict `{"name": tensor, ...}`, bound by
// name to the package's inputs in the order its pt2kit manifest records (positional and keyword inputs
// alike), or a list `[t0, t1, ...]` already in that flat order (the order of `pt2kit inspect`). OUTPUTS.pt is
// written with torch::pickle_save, so `torch.load("OUTPUTS.pt")` in Python reads back a tuple
// of the output tensors, in the package's flat output order.
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open `" + path + "`");
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The little JSON the manifest needs: objects, arrays, strings, numbers, true/false/null.
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;
  const Json* get(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}
  Json parse() {
    Json value = parse_value();
    skip();
    if (i_ != s_.size()) fail("trailing characters");
    return value;
  }

 private:
  const std::string& s_;
  size_t i_ = 0;
  [[noreturn]] void fail(const std::string& why) { throw std::runtime_error("the pt2kit manifest is not valid JSON (" + why + ")"); }
  void skip() { while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_; }
  bool eat(char c) { skip(); if (i_ < s_.size() && s_[i_] == c) { ++i_; return true; } return false; }
  Json parse_value() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    char c = s_[i_];
    if (c == '{') {
      v.kind = Json::kObject; ++i_;
      if (eat('}')) return v;
      do {
        skip();
        std::string key = parse_string();
        if (!eat(':')) fail("expected ':'");
        v.fields[key] = parse_value();
      } while (eat(','));
      if (!eat('}')) fail("expected '}'");
    } else if (c == '[') {
      v.kind = Json::kArray; ++i_;
      if (eat(']')) return v;
      do { v.items.push_back(parse_value()); } while (eat(','));
      if (!eat(']')) fail("expected ']'");
    } else if (c == '"') {
      v.kind = Json::kString; v.text = parse_string();
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 5, "false") == 0) {
      v.kind = Json::kBool; v.text = s_[i_] == 't' ? "true" : "false"; i_ += v.text.size();
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else {
      size_t start = i_;
      while (i_ < s_.size() && std::string("+-.eE0123456789").find(s_[i_]) != std::string::npos) ++i_;
      if (start == i_) fail(std::string("unexpected '") + c + "'");
      v.kind = Json::kNumber; v.text = s_.substr(start, i_ - start);
    }
    return v;
  }
  std::string parse_string() {
    if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
    std::string out;
    for (++i_; i_ < s_.size() && s_[i_] != '"'; ++i_) {
      if (s_[i_] != '\\') { out += s_[i_]; continue; }
      if (++i_ >= s_.size()) break;
      char e = s_[i_];
      if (e == 'u') {  // names are ASCII in practice; keep other code points as '?'
        unsigned code = std::stoul(s_.substr(i_ + 1, 4), nullptr, 16);
        out += code < 128 ? static_cast<char>(code) : '?';
        i_ += 4;
      } else {
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
};

// The names of the package's tensor inputs, in its flat input order, from the pt2kit manifest inside it
// (empty when the package has none: it was not built by pt2kit).
std::vector<std::string> recorded_input_names(const std::string& package) {
  caffe2::serialize::PyTorchStreamReader reader(package);
  const std::string entry = "extra/pt2kit/manifest.json";
  if (!reader.hasRecord(entry)) return {};
  auto [data, size] = reader.getRecord(entry);
  std::string text(static_cast<const char*>(data.get()), size);
  Json manifest = JsonParser(text).parse();
  std::vector<std::string> names;
  const Json* inputs = manifest.get("inputs");
  if (inputs == nullptr || inputs->kind != Json::kArray) throw std::runtime_error("the pt2kit manifest lists no inputs");
  for (const auto& leaf : inputs->items) {
    const Json* kind = leaf.get("kind");
    const Json* name = leaf.get("name");
    if (kind != nullptr && kind->text == "tensor" && name != nullptr) names.push_back(name->text);
  }
  return names;
}

// A package built with `--external-weights tensors` keeps each weight storage as a torch.save file under
// data/weights/, listed in data/aotinductor/model/weights_config.json as {fqn: [file, shape, stride, offset]};
// AOTInductor's loader opens it without them. Read them here and hand them over (the map must outlive the loader's
// use of them: user_managed). Empty when the weights are inside the .so or in its blob.
std::unordered_map<std::string, at::Tensor> stored_weights(const std::string& package, const c10::Device& device) {
  std::unordered_map<std::string, at::Tensor> weights;
  caffe2::serialize::PyTorchStreamReader reader(package);
  const std::string entry = "data/aotinductor/model/weights_config.json";
  if (!reader.hasRecord(entry)) return weights;
  auto [data, size] = reader.getRecord(entry);
  Json config = JsonParser(std::string(static_cast<const char*>(data.get()), size)).parse();
  std::map<std::string, at::Tensor> files;
  auto ints = [](const Json& list) {
    std::vector<int64_t> out;
    for (const auto& item : list.items) out.push_back(std::stoll(item.text));
    return out;
  };
  for (const auto& [fqn, spec] : config.fields) {
    if (spec.kind != Json::kArray || spec.items.size() != 4) throw std::runtime_error("`" + entry + "` is malformed at `" + fqn + "`; rebuild the package");
    const std::string& file = spec.items[0].text;
    auto it = files.find(file);
    if (it == files.end()) {
      auto [bytes, n] = reader.getRecord("data/weights/" + file);
      const char* begin = static_cast<const char*>(bytes.get());
      at::Tensor whole = torch::pickle_load(std::vector<char>(begin, begin + n)).toTensor();
      it = files.emplace(file, device.is_cpu() ? whole : whole.to(device)).first;
    }
    weights[fqn] = it->second.as_strided(ints(spec.items[1]), ints(spec.items[2]), std::stoll(spec.items[3].text));
  }
  return weights;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

at::Tensor tensor_item(const c10::IValue& item, const std::string& path, const std::string& what) {
  if (!item.isTensor()) throw std::runtime_error("`" + path + "` holds a non-tensor item" + what + "; save tensors only");
  return item.toTensor();
}

std::vector<at::Tensor> read_inputs(const std::string& path, const std::string& package) {
  c10::IValue value = torch::pickle_load(read_file(path));
  std::vector<at::Tensor> tensors;
  if (value.isTensor()) {
    tensors.push_back(value.toTensor());
  } else if (value.isList() || value.isTuple()) {
    auto items = value.isList() ? value.toListRef().vec() : value.toTupleRef().elements().vec();
    for (const auto& item : items) tensors.push_back(tensor_item(item, path, ""));
  } else if (value.isGenericDict()) {  // {name: tensor}: bind by the names the manifest records, in its order
    std::map<std::string, at::Tensor> given;
    for (const auto& entry : value.toGenericDict()) {
      if (!entry.key().isString()) throw std::runtime_error("`" + path + "` holds a dict with a non-string key; key it by input name");
      given[entry.key().toStringRef()] = tensor_item(entry.value(), path, " (`" + entry.key().toStringRef() + "`)");
    }
    std::vector<std::string> names = recorded_input_names(package);
    if (names.empty()) throw std::runtime_error("`" + package + "` has no pt2kit manifest to bind names by; save a list in its input order");
    for (const auto& name : names) {
      auto it = given.find(name);
      if (it == given.end()) throw std::runtime_error("`" + path + "` has no input `" + name + "`; the package takes: " + joined(names));
      tensors.push_back(it->second);
      given.erase(it);
    }
    if (!given.empty()) throw std::runtime_error("`" + path + "` holds unknown input `" + given.begin()->first + "`; the package takes: " + joined(names));
  } else {
    throw std::runtime_error("`" + path + "` must hold a dict of tensors by input name or a list of tensors: torch.save({\"x\": t}, path)");
  }
  return tensors;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.aoti.pt2 INPUTS.pt OUTPUTS.pt [--device-index N] [--repeat N]\n";
    return 2;
  }
  const std::string package = argv[1], inputs_path = argv[2], outputs_path = argv[3];
  int device_index = -1, repeat = 1;
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--device-index") device_index = std::stoi(argv[i + 1]);
    else if (flag == "--repeat") repeat = std::max(1, std::stoi(argv[i + 1]));
    else { std::cerr << "error: unknown option `" << flag << "`\n"; return 2; }
  }
  try {
    c10::InferenceMode guard;
    auto start = std::chrono::steady_clock::now();
    torch::inductor::AOTIModelPackageLoader loader(package, "model", false, 1, static_cast<c10::DeviceIndex>(device_index));
    auto loaded = std::chrono::steady_clock::now();
    auto metadata = loader.get_metadata();
    std::vector<at::Tensor> inputs = read_inputs(inputs_path, package);
    std::string device = metadata.count("AOTI_DEVICE_KEY") ? metadata["AOTI_DEVICE_KEY"] : "cpu";
    c10::Device target(c10::kCPU);
    if (device.rfind("cuda", 0) == 0) {
      target = device_index >= 0 ? c10::Device(c10::kCUDA, device_index) : c10::Device(c10::kCUDA);
      for (auto& t : inputs) t = t.to(target);
    }
    std::unordered_map<std::string, at::Tensor> weights = stored_weights(package, target);
    if (!weights.empty()) loader.load_constants(weights, false, true, true);  // use_inactive, check_full_update, user_managed
    std::vector<at::Tensor> outputs;
    auto run_start = std::chrono::steady_clock::now();
    for (int i = 0; i < repeat; ++i) outputs = loader.run(inputs);
    auto done = std::chrono::steady_clock::now();
    // a tuple of plain tensors: Python's torch.load reads it with weights_only=True (a c10::List<Tensor> would not)
    std::vector<c10::IValue> items;
    for (auto& t : outputs) items.emplace_back(t.cpu());
    std::vector<char> bytes = torch::pickle_save(c10::ivalue::Tuple::create(std::move(items)));
    std::ofstream out(outputs_path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write `" + outputs_path + "`");
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    std::cerr << "loaded in " << ms(start, loaded) << " ms; " << inputs.size() << " inputs, " << outputs.size()
              << " outputs; " << ms(run_start, done) / repeat << " ms per run (" << repeat << " runs)\n";
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::cerr << "error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  }
  return 0;
}
