#version 450
// The demo's whole frame: an animated landscape (sky, sun, stars, three parallax ridges)
// driven by the time push constant, and over it an opaque text panel whose glyphs come from a
// grid of cells (glyph index | colour << 16) and a PSF bitmap font, both storage buffers the
// host rewrites every frame. Cheap per pixel on purpose: it runs on lavapipe too.
layout(location = 0) in vec2 uv;
layout(location = 0) out vec4 out_color;

layout(std430, set = 0, binding = 0) readonly buffer Cells { uint cells[]; };
layout(std430, set = 0, binding = 1) readonly buffer Font { uint font[]; };

layout(push_constant) uniform Push {
    vec2 resolution;  // framebuffer size, pixels
    float time;       // seconds since start
    uint show_panel;  // 0: scene only
    ivec2 panel_pos;  // top-left pixel of the panel
    ivec2 panel_size; // pixels
    ivec2 text_pos;   // top-left pixel of the cell grid
    uint cols, rows;  // cell grid
    uint glyph_w, glyph_h, glyph_bytes, row_bytes; // font: pixels, bytes per glyph and row
    uint scale;       // each font pixel is scale x scale screen pixels
} pc;

float hash(float n) { return fract(sin(n) * 43758.5453); }

// a ridge line: height (0..1 of the screen) at x, scrolling at speed
float ridge(float x, float t, float speed, float base, float amp, float seed) {
    float s = x + t * speed;
    return base + amp * (0.55 * sin(s * 3.1 + seed) + 0.3 * sin(s * 7.3 + seed * 2.0) +
                         0.15 * sin(s * 17.9 + seed * 3.0));
}

vec3 scene(vec2 frag) {
    vec2 p = frag / pc.resolution;           // 0..1, y down
    float y = 1.0 - p.y;                      // y up
    float aspect = pc.resolution.x / pc.resolution.y;
    float t = pc.time;
    // sky: the hue drifts slowly between dusk colours
    float cyc = 0.5 + 0.5 * sin(t * 0.15);
    vec3 top = mix(vec3(0.05, 0.04, 0.20), vec3(0.10, 0.02, 0.25), cyc);
    vec3 horizon = mix(vec3(0.95, 0.45, 0.25), vec3(0.90, 0.30, 0.45), cyc);
    vec3 col = mix(horizon, top, smoothstep(0.15, 0.95, y));
    // stars that twinkle, above the glow
    vec2 cell = floor(frag / 8.0), f = frag - cell * 8.0 - 4.0;
    float h = hash(cell.x * 17.0 + cell.y * 131.0);
    if (h > 0.98 && y > 0.45 && dot(f, f) < 2.0)
        col += vec3(0.8) * (0.5 + 0.5 * sin(t * 3.0 + h * 100.0));
    // the sun bobs and glows
    vec2 sun = vec2(0.22 + 0.05 * sin(t * 0.3), 0.42 + 0.06 * sin(t * 0.5));
    vec2 d = vec2((p.x - sun.x) * aspect, y - sun.y);
    float r = length(d);
    col += vec3(1.0, 0.6, 0.3) * 0.25 / (1.0 + r * 40.0);
    if (r < 0.07) col = mix(col, vec3(1.0, 0.85, 0.5), smoothstep(0.07, 0.065, r));
    // three ridges, the nearer ones faster and darker (parallax)
    float x = p.x * aspect;
    if (y < ridge(x, t, 0.05, 0.42, 0.06, 1.0)) col = mix(col, vec3(0.35, 0.15, 0.35), 0.8);
    if (y < ridge(x, t, 0.12, 0.30, 0.07, 4.0)) col = vec3(0.20, 0.08, 0.25);
    if (y < ridge(x, t, 0.30, 0.16, 0.05, 9.0)) col = vec3(0.08, 0.03, 0.10);
    return col;
}

// 1 where the pixel is on a glyph's ink
float glyph_ink(ivec2 q) {
    uint c = uint(q.x) / (pc.glyph_w * pc.scale), r = uint(q.y) / (pc.glyph_h * pc.scale);
    if (c >= pc.cols || r >= pc.rows) return 0.0;
    uint cell = cells[r * pc.cols + c];
    uint gx = (uint(q.x) / pc.scale) % pc.glyph_w, gy = (uint(q.y) / pc.scale) % pc.glyph_h;
    uint off = (cell & 0xffffu) * pc.glyph_bytes + gy * pc.row_bytes + gx / 8u;
    uint byte = (font[off >> 2] >> ((off & 3u) * 8u)) & 0xffu;
    return float((byte >> (7u - (gx & 7u))) & 1u);
}

vec3 ink_color(ivec2 q) {
    uint c = uint(q.x) / (pc.glyph_w * pc.scale), r = uint(q.y) / (pc.glyph_h * pc.scale);
    uint k = cells[r * pc.cols + c] >> 16;
    if (k == 1u) return vec3(0.45, 0.85, 1.0); // status line
    if (k == 2u) return vec3(1.0, 0.80, 0.35); // titles
    if (k == 3u) return vec3(0.55, 0.55, 0.60); // dim notes
    return vec3(0.93, 0.92, 0.88);              // story text
}

void main() {
    vec2 frag = gl_FragCoord.xy;
    vec3 col = scene(frag);
    ivec2 ip = ivec2(frag);
    ivec2 rel = ip - pc.panel_pos;
    if (pc.show_panel != 0u && all(greaterThanEqual(rel, ivec2(0))) &&
        all(lessThan(rel, pc.panel_size))) {
        // opaque panel with a thin border, so the text region shows only text
        bool border = any(lessThan(rel, ivec2(2))) || any(greaterThanEqual(rel, pc.panel_size - 2));
        col = border ? vec3(0.55, 0.45, 0.75) : vec3(0.04, 0.035, 0.07);
        ivec2 q = ip - pc.text_pos;
        if (!border && all(greaterThanEqual(q, ivec2(0))) && glyph_ink(q) > 0.5) col = ink_color(q);
    }
    out_color = vec4(col, 1.0);
}
