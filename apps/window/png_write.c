/* The screenshot file, with libpng. Written to a temporary name and renamed, so a reader never
 * sees half a file (a test that waits for it, a CI step that uploads it). */
#include "win.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool win_png_write(const char *path, const uint8_t *rgb, uint32_t w, uint32_t h, char *err,
                   size_t err_cap) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        snprintf(err, err_cap, "%.900s: cannot write: %s", tmp, strerror(errno));
        return false;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc(h * sizeof *rows);
    if (!png || !info || !rows) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(fp);
        remove(tmp);
        snprintf(err, err_cap, "out of memory writing %s", path);
        return false;
    }
    /* libpng reports errors by longjmp back here */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(fp);
        remove(tmp);
        snprintf(err, err_cap, "%s: libpng failed to write it", path);
        return false;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < h; y++)
        rows[y] = (png_bytep)(rgb + (size_t)y * w * 3);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fclose(fp) != 0 || rename(tmp, path) != 0) {
        snprintf(err, err_cap, "%.900s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        return false;
    }
    return true;
}
