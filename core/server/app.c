/* The app module: dlopen, descriptor checks, handler-set lookup, worker identity. */
#include "core/server/app.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/base/log.h"

static void *g_handle;
static const srv_app_t *g_app;
static srv_worker_t g_self = {.id = -1, .role = "master"};

int srv__app_load(const char *path, const srv_app_t **out, char *err, size_t errlen)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, errlen, "cannot load app %s: %s", path, dlerror());
        return -ENOEXEC;
    }
    const srv_app_t *app = dlsym(h, "srv_app");
    if (app == NULL) {
        snprintf(err, errlen, "app %s does not export srv_app (use SRV_APP(...))", path);
        dlclose(h);
        return -ENOEXEC;
    }
    if (app->abi_version != SRV_ABI_VERSION) {
        snprintf(err, errlen, "app %s was built for srv ABI %u, this srv speaks %u: rebuild it",
                 path, app->abi_version, SRV_ABI_VERSION);
        dlclose(h);
        return -ENOEXEC;
    }
    g_handle = h;
    g_app = app;
    *out = app;
    return 0;
}

const srv_app_t *srv__app(void)
{
    return g_app;
}

const srv_handlers_t *srv__app_handlers(const char *name)
{
    if (g_app == NULL)
        return NULL;
    if (name == NULL || name[0] == '\0')
        return &g_app->handlers;
    for (const srv_handlers_t *const *p = g_app->named; p && *p; p++)
        if ((*p)->name && strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

void *srv__app_symbol(const char *name)
{
    return g_handle ? dlsym(g_handle, name) : NULL;
}

void srv__app_unload(void)
{
    /* Kept mapped: atexit handlers and TLS destructors of the module may still run. */
    g_app = NULL;
}

void srv__worker_set_self(int id, const char *role, int worker_num)
{
    g_self.id = id;
    g_self.pid = getpid();
    g_self.role = role;
    g_self.worker_num = worker_num;
}

const srv_worker_t *srv_worker_self(void)
{
    return &g_self;
}

void srv_app_log(int level, const char *fmt, ...)
{
    if (level < SRV_LOG_ERROR)
        level = SRV_LOG_ERROR;
    if (level > SRV_LOG_DEBUG)
        level = SRV_LOG_DEBUG;
    if (!srv__log_enabled((srv__log_level_t)level, "app"))
        return;
    char msg[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv__log((srv__log_level_t)level, "app", 0, "%s", msg);
}
