# Writes a C file that holds a file's bytes, so that a binary carries it (vkllm serve's chat
# page). CMake alone, no network and no other tool: cmake -DIN=file -DOUT=file.c -DNAME=sym
# -P embed.cmake. The array ends with a NUL not counted in NAME_len, so text can be used as
# a C string too.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REPEAT "0x[0-9a-f][0-9a-f]," 12 line)
string(REGEX REPLACE "(${line})" "\\1\n" bytes "${bytes}")
get_filename_component(base "${IN}" NAME)
file(WRITE "${OUT}.tmp"
     "/* generated from ${base} by cmake/embed.cmake: do not edit */\n"
     "#include <stddef.h>\n"
     "extern const unsigned char ${NAME}[];\n"
     "extern const size_t ${NAME}_len;\n"
     "const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
     "const size_t ${NAME}_len = ${size};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
