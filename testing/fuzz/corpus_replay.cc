#include "testing/fuzz/corpus_replay.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace ferrite_fuzz {

int replay_corpus(int argc, char** argv, const char* corpus_dir, TestOneInput fn, const char* fuzzer_name) {
  std::vector<std::string> paths(argv + 1, argv + argc);
  if (paths.empty()) {
    if (DIR* d = opendir(corpus_dir)) {
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') paths.push_back(std::string(corpus_dir) + "/" + e->d_name);
      }
      closedir(d);
    }
    std::sort(paths.begin(), paths.end());
  }
  int replayed = 0;
  for (const std::string& path : paths) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
      std::fprintf(stderr, "%s: cannot open %s\n", fuzzer_name, path.c_str());
      return 1;
    }
    std::vector<std::uint8_t> bytes;
    for (int c; (c = std::fgetc(f)) != EOF;) bytes.push_back(static_cast<std::uint8_t>(c));
    std::fclose(f);
    fn(bytes.data(), bytes.size());
    ++replayed;
  }
  std::printf("%s: replayed %d corpus inputs, 0 failed\n", fuzzer_name, replayed);
  return replayed > 0 ? 0 : 1;
}

}  // namespace ferrite_fuzz
