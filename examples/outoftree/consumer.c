/* Built outside the longctx tree against an installed longctx, through
 * pkg-config or CMake: converts a few values and prints them. */
#include <stdio.h>

#include <longctx/longctx.h>

int main(void)
{
    if (lcx_version() != LCX_VERSION_NUMBER) {
        fprintf(stderr, "header %s but library %s\n", LCX_VERSION_STRING, lcx_version_string());
        return 1;
    }
    lcx_context *ctx;
    if (lcx_context_create(NULL, &ctx) != LCX_OK) {
        fprintf(stderr, "context: %s\n", lcx_last_error());
        return 1;
    }
    float x[4] = {1.0f, 3.14159265f, -65520.0f, 1e-8f};
    uint16_t h[4];
    lcx_tensor src, dst;
    const int64_t shape[1] = {4};
    lcx_tensor_init(&src, x, LCX_F32, 1, shape);
    lcx_tensor_init(&dst, h, LCX_F16, 1, shape);
    const lcx_status st = lcx_convert(ctx, &src, &dst);
    printf("longctx %s on %s: f16 bits %04x %04x %04x %04x (%s)\n", lcx_version_string(),
           lcx_context_isa_name(ctx), h[0], h[1], h[2], h[3], lcx_status_string(st));
    lcx_context_destroy(ctx);
    /* 1.0 -> 0x3c00, pi -> 0x4248, -65520 -> -inf 0xfc00, 1e-8 -> 0 */
    return st == LCX_OK && h[0] == 0x3c00 && h[1] == 0x4248 && h[2] == 0xfc00 && h[3] == 0 ? 0 : 1;
}
