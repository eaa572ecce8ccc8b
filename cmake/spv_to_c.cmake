# Turns one SPIR-V file into a C array: cmake -DSPV=in.spv -DOUT=out.c -DNAME=sym -P spv_to_c.cmake
file(READ "${SPV}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* generated from ${NAME}.spv: do not edit */\n#include <stdint.h>\n"
     "_Alignas(4) const unsigned char vk_spv_${NAME}[${bytes}] = {\n${body}\n};\n"
     "const uint32_t vk_spv_${NAME}_size = ${bytes};\n")
