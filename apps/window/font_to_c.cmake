# The window demo's font as a C array: cmake -DPSF=font.psf.gz -DOUT=out.c -P font_to_c.cmake
# The console fonts Debian ships are gzip-compressed; gzip (always on Debian) unpacks it.
execute_process(COMMAND gzip -dc "${PSF}" OUTPUT_FILE "${OUT}.psf" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cannot decompress ${PSF}")
endif()
file(READ "${OUT}.psf" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* generated from ${PSF}: do not edit */\n#include <stdint.h>\n"
     "const unsigned char win_font_psf[${bytes}] = {\n${body}\n};\n"
     "const uint32_t win_font_psf_size = ${bytes};\n")
file(REMOVE "${OUT}.psf")
