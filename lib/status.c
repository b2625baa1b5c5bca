/* Status codes, version and the thread-local error message. */
#include <stdarg.h>
#include <stdio.h>

#include "internal/lcx_internal.h"

static _Thread_local char lcx_err_buf[512];

lcx_status lcx_fail(lcx_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lcx_err_buf, sizeof lcx_err_buf, fmt, ap);
    va_end(ap);
    return status;
}

const char *lcx_last_error(void)
{
    return lcx_err_buf;
}

const char *lcx_status_string(lcx_status status)
{
    switch (status) {
    case LCX_OK: return "LCX_OK: success";
    case LCX_E_INVALID: return "LCX_E_INVALID: invalid argument";
    case LCX_E_UNSUPPORTED: return "LCX_E_UNSUPPORTED: not supported by this build, CPU or device";
    case LCX_E_NOMEM: return "LCX_E_NOMEM: out of memory";
    case LCX_E_OVERFLOW: return "LCX_E_OVERFLOW: size overflow";
    case LCX_E_DEVICE: return "LCX_E_DEVICE: device (CUDA) error";
    case LCX_E_CALLBACK: return "LCX_E_CALLBACK: a caller callback failed";
    case LCX_E_INTERNAL: return "LCX_E_INTERNAL: internal error";
    }
    return "LCX_E_?: unknown status code";
}

uint32_t lcx_version(void)
{
    return (uint32_t)LCX_VERSION_NUMBER;
}

const char *lcx_version_string(void)
{
    return LCX_VERSION_STRING;
}

size_t lcx_dtype_size(lcx_dtype dtype)
{
    switch (dtype) {
    case LCX_F32: return 4;
    case LCX_F16: return 2;
    case LCX_BF16: return 2;
    }
    return 0;
}

const char *lcx_dtype_name(lcx_dtype dtype)
{
    switch (dtype) {
    case LCX_F32: return "f32";
    case LCX_F16: return "f16";
    case LCX_BF16: return "bf16";
    }
    return "?";
}
