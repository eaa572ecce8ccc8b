// Shared by every kernel: the tier's extensions, the workgroup size (specialization
// constants 100..102, set by vk_pipe_create), the step parameter buffer layout
// (src/vk/vk_ops.h vk_step_params), and math that must give the same bits as the CPU path.
//
// TIER (a define from shaders.list): 0 = Vulkan 1.1 core, fp32 and 32-bit storage only;
// 1 = + fp16 arithmetic, 8/16-bit storage, subgroup arithmetic; 2 = + integer dot product.
#ifndef COMMON_GLSL
#define COMMON_GLSL

#if TIER >= 1
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int8 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#if TIER >= 2
#extension GL_EXT_spirv_intrinsics : require
// OpSDot (SPV_KHR_integer_dot_product) on two packed 4 x int8 words: glslang 12 has no
// GL_EXT_integer_dot_product, so the instruction is named directly.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int fmt);
#define DOT4(a, b) sdot4x8((a), (b), 0)
#endif

layout(local_size_x_id = 100, local_size_y_id = 101, local_size_z_id = 102) in;

// exp(x) exactly as the CPU path's cpu_vec_expf (Arm optimized-routines' vector expf): the
// shader does not depend on the driver's exp precision, and SiLU and the prefill softmax give
// the CPU's bits. precise keeps every fma fused and nothing else contracted.
#define F32C(bits) uintBitsToFloat(bits)
float vexp(float x) {
    const float shift = F32C(0x4b400000u); // 0x1.8p23
    precise float z = fma(x, F32C(0x3fb8aa3bu), shift);
    precise float n = z - shift;
    precise float b = fma(-n, F32C(0x35bfbe8eu), fma(-n, F32C(0x3f317200u), x));
    uint e = floatBitsToUint(z) << 23;
    float k = uintBitsToFloat(e + 0x3f800000u);
    precise float u = b * b;
    precise float j = fma(fma(fma(F32C(0x3c072010u), b, F32C(0x3d2b9f17u)), u,
                              fma(F32C(0x3e2aaf33u), b, F32C(0x3efffedbu))),
                          u, F32C(0x3f7ffff6u) * b);
    if (!(abs(n) > 126.0)) {
        precise float r = fma(j, k, k);
        return r;
    }
    uint g = n <= 0.0 ? 0x82000000u : 0u;
    float s1 = uintBitsToFloat(g + 0x7f000000u);
    float s2 = uintBitsToFloat(e - g);
    if (abs(n) > 192.0) {
        precise float r = s1 * s1;
        return r;
    }
    precise float r = fma(s2, j, s2) * s1;
    return r;
}

// fp16 <-> fp32 through the packing built-ins, which every tier has (tier 0 stores F16 data
// as pairs in 32-bit words).
float h2f(uint bits) { return unpackHalf2x16(bits).x; }
uint f2h(float v) { return packHalf2x16(vec2(v, 0.0)) & 0xffffu; }

#endif
