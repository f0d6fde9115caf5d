/* Replays inputs through a libFuzzer target without libFuzzer, so every build (gcc included,
 * under ASan+UBSan in CI) runs each harness over its corpus as a regression test. Arguments
 * are files or folders (every regular file in them); with none, a few generated inputs run. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL)
        return -1;
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 1;
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int count = 0;
    struct dirent *e;
    char full[4096];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
        int rc = run_file(full);
        if (rc < 0) {
            closedir(d);
            return -1;
        }
        count += rc;
    }
    closedir(d);
    return count;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int rc = run_path(argv[i]);
        if (rc < 0)
            return 1;
        total += rc;
    }
    /* Generated inputs: every length up to 512 of a few byte patterns. */
    uint8_t buf[512];
    for (int pat = 0; pat < 4; pat++) {
        for (size_t len = 0; len <= sizeof(buf); len += 7) {
            for (size_t j = 0; j < len; j++)
                buf[j] = pat == 0   ? 0
                         : pat == 1 ? 0xff
                         : pat == 2 ? (uint8_t)j
                                    : (uint8_t)(j * 131 + 17);
            LLVMFuzzerTestOneInput(buf, len);
            total++;
        }
    }
    printf("replayed %d inputs\n", total);
    return 0;
}
