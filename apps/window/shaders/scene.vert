#version 450
// One triangle that covers the whole window (no vertex buffer): the fragment shader draws
// everything, the scene and the text panel, in one pass.
layout(location = 0) out vec2 uv;

void main() {
    vec2 p = vec2(float((gl_VertexIndex << 1) & 2), float(gl_VertexIndex & 2));
    uv = p;
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
