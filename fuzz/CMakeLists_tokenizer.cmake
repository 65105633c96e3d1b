# libFuzzer target for the tokenizer; include()d from the root CMakeLists.txt
# under option AM_FUZZ (clang, with -fsanitize=fuzzer-no-link on the
# libraries). Run: build/fuzz_tokenizer -max_total_time=30 CORPUS_DIR
if(TARGET amorph_llm)
  add_executable(fuzz_tokenizer ${CMAKE_CURRENT_LIST_DIR}/fuzz_tokenizer.c)
  target_compile_options(fuzz_tokenizer
                         PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_tokenizer PRIVATE -fsanitize=fuzzer,address,undefined)
  target_compile_definitions(fuzz_tokenizer PRIVATE
    AM_TOKENIZER_FIXTURE="${CMAKE_CURRENT_LIST_DIR}/../tests/data/tokenizer/tokenizer.json")
  target_link_libraries(fuzz_tokenizer PRIVATE amorph_llm)
endif()
