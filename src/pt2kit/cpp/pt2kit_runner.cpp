// pt2kit_runner: run an AOTInductor package without Python.
//
//   pt2kit_runner MODEL.aoti.pt2 INPUTS.pt OUTPUTS.pt [--device-index N] [--repeat N]
//
// INPUTS.pt is what Python's `torch.save([t0, t1, ...], "INPUTS.pt")` writes: a list of the
// package's tensor inputs in its flat order (the order of `pt2kit inspect`). OUTPUTS.pt is
// written with torch::pickle_save, so `torch.load("OUTPUTS.pt")` in Python reads back a tuple
// of the output tensors, in the package's flat output order.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace {

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open `" + path + "`");
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<at::Tensor> read_inputs(const std::string& path) {
  c10::IValue value = torch::pickle_load(read_file(path));
  std::vector<at::Tensor> tensors;
  if (value.isTensor()) {
    tensors.push_back(value.toTensor());
  } else if (value.isList() || value.isTuple()) {
    auto items = value.isList() ? value.toListRef().vec() : value.toTupleRef().elements().vec();
    for (const auto& item : items) {
      if (!item.isTensor()) throw std::runtime_error("`" + path + "` holds a non-tensor item; save a list of tensors");
      tensors.push_back(item.toTensor());
    }
  } else {
    throw std::runtime_error("`" + path + "` must hold a list of tensors: torch.save([t0, t1], path)");
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
    std::vector<at::Tensor> inputs = read_inputs(inputs_path);
    std::string device = metadata.count("AOTI_DEVICE_KEY") ? metadata["AOTI_DEVICE_KEY"] : "cpu";
    if (device.rfind("cuda", 0) == 0) {
      auto target = device_index >= 0 ? c10::Device(c10::kCUDA, device_index) : c10::Device(c10::kCUDA);
      for (auto& t : inputs) t = t.to(target);
    }
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
