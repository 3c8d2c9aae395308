/*
 * weights_loader.c — maps a compiled model's weights as its manifest describes
 * (format and contract in include/attune_weights.h).
 *
 * Why a manifest instead of one packed weights file: a packed fp32 copy doubled the
 * disk and memory footprint of every checkpoint (and of bf16 ones quadrupled it), made
 * compile time grow with the weights, and writing it in one call silently truncated
 * files over 2 GiB. Checkpoint tensors are now used where they lie.
 */
#define _GNU_SOURCE
#include "attune_weights.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

/* DT_Q8: int8 or 4-bit rows quantised at compile time (attune_linear_q8.h,
   attune_linear_q4.h), named int8_g<group>_<f16|f32> or q4_g<group>_<f16|f32> after
   their layout; only ever mapped in place. */
enum dtype { DT_F32, DT_BF16, DT_F16, DT_Q8 };

typedef struct {
    char *path;
    const unsigned char *map;
    size_t size;
    int checksummed;         /* read whole at open (derived blobs), not part by part */
} mapped_file;

typedef struct {
    int64_t file, offset, count;
    enum dtype dtype;
    int64_t q8_bits, q8_group, q8_scale_bytes;   /* DT_Q8's layout */
    char *name;
    void *dst;               /* where the part's elements go; NULL when the slot points into the file */
    enum dtype dst_format;   /* what they become there: f32 or bf16 */
    int64_t bad;             /* first non-finite element, or -1 */
} part;

struct attune_weights {
    mapped_file *files;
    int64_t n_files;
    part *parts;
    int64_t n_parts;
    void *owned;             /* one region holding every materialised slot */
    size_t owned_bytes;
};

static int failf(char *error, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error, size, fmt, ap);
    va_end(ap);
    return 1;
}

uint64_t attune_payload_hash(const void *data, size_t bytes) {
    /* Four chains so that their multiplies overlap: one chain, bound by the multiply's
       latency, hashed a 2.2 GB weights file at 5.7 GB/s (0.39 s of a 0.52 s open). */
    const unsigned char *p = data;
    const uint64_t basis = UINT64_C(0xcbf29ce484222325), prime = UINT64_C(0x100000001b3);
    uint64_t h[4] = {basis, basis, basis, basis};
    size_t i = 0, k = 0;
    for (; i + 32 <= bytes; i += 32)
        for (int lane = 0; lane < 4; lane++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * lane, 8);   /* little-endian machines only, like the rest of Attune */
            h[lane] = (h[lane] ^ w) * prime;
        }
    for (; i + 8 <= bytes; i += 8, k++) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h[k] = (h[k] ^ w) * prime;
    }
    uint64_t r = basis;
    for (int lane = 0; lane < 4; lane++) r = (r ^ h[lane]) * prime;
    for (; i < bytes; i++) r = (r ^ p[i]) * prime;
    return r;
}

static size_t dtype_size(enum dtype t) { return t == DT_F32 ? 4 : t == DT_Q8 ? 1 : 2; }

static const char *dtype_name(enum dtype t) { return t == DT_F32 ? "f32" : t == DT_BF16 ? "bf16" : t == DT_Q8 ? "int8" : "f16"; }

/* Reads a quantised layout name (int8_g32_f16, q4_g32_f16); 1 when it is one. */
static int parse_q8(const char *word, int64_t *bits, int64_t *group, int64_t *scale_bytes) {
    long long g;
    char sc[4];
    int end = 0;
    const char *rest = strncmp(word, "q4_g", 4) == 0 ? word + 2 : strncmp(word, "int8_g", 6) == 0 ? word + 4 : NULL;
    if (!rest || sscanf(rest, "_g%lld_%3[a-z0-9]%n", &g, sc, &end) != 2 || rest[end] != 0 || g <= 0) return 0;
    if (strcmp(sc, "f16") && strcmp(sc, "f32")) return 0;
    *bits = rest == word + 2 ? 4 : 8;
    *group = g;
    *scale_bytes = sc[1] == '1' ? 2 : 4;
    return 1;
}

/* Bytes a part occupies in its file. */
static uint64_t part_bytes(const part *p) {
    if (p->dtype == DT_Q8)
        return (uint64_t)(p->count * p->q8_bits / 8) + (uint64_t)(p->count / p->q8_group) * (uint64_t)p->q8_scale_bytes;
    return (uint64_t)p->count * dtype_size(p->dtype);
}

float attune_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {                 /* subnormal: normalise */
        int e = -1;
        uint32_t m = man;
        do { e++; m <<= 1; } while (!(m & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((m & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* NaN stays NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);                   /* to nearest even */
}

/* Element i of a part as f32 (exact for every stored dtype). */
static float element(const unsigned char *src, enum dtype t, int64_t i) {
    if (t == DT_F32) { float v; memcpy(&v, src + 4 * i, 4); return v; }
    uint16_t b;
    memcpy(&b, src + 2 * i, 2);
    if (t == DT_F16) return attune_f16_to_f32(b);
    uint32_t bits = (uint32_t)b << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* Elements [first, first + n) of a part into a bf16 slot: copied when stored bf16, rounded
 * to nearest even otherwise (Swift's Float.bf16Bits and attune_f32_to_bf16 round alike).
 * Returns the index of the first non-finite one, or -1. */
static int64_t process_bf16(const unsigned char *src, enum dtype t, uint16_t *dst, int64_t first, int64_t n) {
    int64_t bad = -1;
    for (int64_t i = first; i < first + n; i++) {
        const float v = element(src, t, i);
        if (bad < 0 && !isfinite(v)) bad = i;
        if (t == DT_BF16) memcpy(dst + i, src + 2 * i, 2);
        else dst[i] = f32_to_bf16(v);
    }
    return bad;
}

/* Converts to f32 (when dst is set) and scans elements [first, first + n) of a part;
 * returns the index of the first non-finite one, or -1. */
static int64_t process(const unsigned char *src, enum dtype t, float *dst, int64_t first, int64_t n) {
    int bad = 0;
    if (t == DT_F32) {
        const uint32_t *u = (const uint32_t *)(const void *)src + first;   /* offsets are 4-aligned or copied below */
        uint32_t any = 0;
        if (dst) memcpy(dst + first, u, sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) any |= (u[i] & 0x7f800000u) == 0x7f800000u;
        bad = any != 0;
    } else if (t == DT_BF16) {
        uint16_t any = 0;
        for (int64_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, src + 2 * (first + i), 2);
            any |= (uint16_t)((b & 0x7f80) == 0x7f80);
            uint32_t bits = (uint32_t)b << 16;
            if (dst) memcpy(dst + first + i, &bits, 4);
        }
        bad = any != 0;
    } else {
        uint16_t any = 0;
        int64_t i = 0;
#if defined(__F16C__)
        for (; i + 8 <= n; i += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + 2 * (first + i)));
            any |= (uint16_t)(_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7c00)), _mm_set1_epi16(0x7c00))) != 0);
            _mm256_storeu_ps(dst + first + i, _mm256_cvtph_ps(h));
        }
#endif
        for (; i < n; i++) {
            uint16_t b;
            memcpy(&b, src + 2 * (first + i), 2);
            any |= (uint16_t)((b & 0x7c00) == 0x7c00);
            dst[first + i] = attune_f16_to_f32(b);
        }
        bad = any != 0;
    }
    if (!bad) return -1;
    for (int64_t i = first; i < first + n; i++) {
        uint32_t e;
        if (t == DT_F32) { memcpy(&e, src + 4 * i, 4); if ((e & 0x7f800000u) == 0x7f800000u) return i; }
        else { uint16_t b; memcpy(&b, src + 2 * i, 2); if ((b & (t == DT_BF16 ? 0x7f80 : 0x7c00)) == (t == DT_BF16 ? 0x7f80 : 0x7c00)) return i; }
    }
    return -1;
}

/* The rest of `line` after `skip` characters, without the newline. */
static char *rest_of(char *line, int skip) {
    char *s = line + skip;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
    return strdup(s);
}

void attune_weights_close(attune_weights *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_files; i++) {
        if (w->files[i].map) munmap((void *)w->files[i].map, w->files[i].size);
        free(w->files[i].path);
    }
    for (int64_t i = 0; i < w->n_parts; i++) free(w->parts[i].name);
    if (w->owned) munmap(w->owned, w->owned_bytes);
    free(w->files);
    free(w->parts);
    free(w);
}

static int map_file(mapped_file *f, const char *checksum, char *error, size_t error_size, int64_t expected) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return failf(error, error_size, "%s: cannot open weights: %s", f->path, strerror(e));
    }
    if ((int64_t)st.st_size != expected) {
        close(fd);
        return failf(error, error_size, "%s: %lld bytes, the weights manifest expects %lld: the file changed since the model was compiled; compile again",
                     f->path, (long long)st.st_size, (long long)expected);
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return failf(error, error_size, "%s: cannot map weights: %s", f->path, strerror(e));
        }
        f->map = p;
        /* Weights used in place (f32, bf16, int8) are streamed once per decoded token:
           asked for huge pages, a file whose pages this read brings into the page cache
           is mapped with 2 MiB entries (large folios; measured on this machine's ext4:
           100 % of a cold 512 MiB file PMD-mapped, 0 % of one still cached from its
           writer), which spares the page walks that cost a sixth of a decode step with
           4 KiB pages. Then the pages in use are read at once (converted or scanned right
           after): one populating call costs about half of faulting them in one by one.
           A file with a checksum is read whole here; a checkpoint only where its parts
           lie (populate_parts), so tensors the module takes from elsewhere (int8 weights
           quantised into the compile cache) never count in its memory. Both are hints;
           older kernels refuse them and the pages fault in as read. */
#ifdef MADV_HUGEPAGE
        if (f->size >= ((size_t)2 << 20)) madvise(p, f->size, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_READ
        if (strcmp(checksum, "-") != 0) madvise(p, f->size, MADV_POPULATE_READ);
#endif
    }
    close(fd);
    f->checksummed = strcmp(checksum, "-") != 0;
    if (f->checksummed) {
        char have[17];
        snprintf(have, sizeof have, "%016llx", (unsigned long long)attune_payload_hash(f->map, f->size));
        if (strcmp(have, checksum) != 0)
            return failf(error, error_size, "%s is damaged: checksum %s, the manifest recorded %s; delete it and compile again", f->path, have, checksum);
    }
    return 0;
}

/* Reads the pages of every part of a checkpoint file (files with a checksum were read
   whole by map_file). */
static void populate_parts(const attune_weights *w) {
#ifdef MADV_POPULATE_READ
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int64_t i = 0; i < w->n_parts; i++) {
        const part *p = &w->parts[i];
        if (w->files[p->file].checksummed || part_bytes(p) == 0) continue;
        uintptr_t lo = (uintptr_t)(w->files[p->file].map + p->offset) / page * page;
        uintptr_t hi = (uintptr_t)(w->files[p->file].map + p->offset) + (uintptr_t)part_bytes(p);
        madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
    }
#else
    (void)w;
#endif
}

/* Drops the pages of every file whose parts were all copied into the materialised
   region. The per-chunk drops above cover only whole pages inside a part; a file holding
   only small tensors (a checkpoint whose matmul weights come quantised from the compile
   cache keeps just norms and biases here) stays resident through the pages around them
   that the faults brought in: 5.5 MiB of a Qwen2.5-0.5B checkpoint. The mapping stays
   valid; nothing reads it again. */
static void release_copied_files(const attune_weights *w) {
    for (int64_t f = 0; f < w->n_files; f++) {
        int in_place = 0;
        for (int64_t p = 0; p < w->n_parts && !in_place; p++) in_place = w->parts[p].file == f && !w->parts[p].dst;
        if (!in_place && w->files[f].size > 0) madvise((void *)w->files[f].map, w->files[f].size, MADV_DONTNEED);
    }
}

/* One region for every materialised slot, mapped anonymously and asked to be backed by
 * transparent huge pages (this kernel's THP mode is "madvise"): decode streams every
 * weight once per token, and with 4 KiB pages the page walks of a 2 GB working set cost
 * 16 % of a Qwen2.5-0.5B decode step. One region wastes at most one huge page's rounding,
 * where a region per slot wasted one per slot. */
static void *materialised_region(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= ((size_t)2 << 20)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* One unit of parallel work: elements [first, first + n) of part p. */
typedef struct { int64_t p, first, n; } job;

attune_weights *attune_weights_open(const char *path, uint64_t graph_hash, int64_t n_slots,
                                    const int64_t *slot_elements, const char *const *slot_formats,
                                    const void **slots, char *error, size_t error_size) {
    FILE *in = fopen(path, "r");
    if (!in) { failf(error, error_size, "%s: cannot open weights manifest: %s", path, strerror(errno)); return NULL; }
    attune_weights *w = calloc(1, sizeof *w);
    int64_t *slot_first = calloc((size_t)(n_slots > 0 ? n_slots : 1), sizeof(int64_t));
    int64_t *slot_parts = calloc((size_t)(n_slots > 0 ? n_slots : 1), sizeof(int64_t));
    enum dtype *slot_format = calloc((size_t)(n_slots > 0 ? n_slots : 1), sizeof(enum dtype));
    char *line = NULL, *dir = strdup(path);
    int64_t q8_bits, q8_group, q8_scale_bytes;
    size_t cap = 0;
    int allow_nonfinite = 0, ok = w && slot_first && slot_parts && slot_format && dir;
    int64_t line_no = 0, declared_slots = -1, files_cap = 0, parts_cap = 0, current_slot = -1;
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) slash[1] = 0; else if (dir) dir[0] = 0;
    if (!ok) failf(error, error_size, "out of memory reading %s", path);
#define BAD(...) do { failf(error, error_size, __VA_ARGS__); ok = 0; } while (0)
    while (ok && getline(&line, &cap, in) > 0) {
        line_no++;
        unsigned long long hash;
        long long a, b, c, d;
        int skip = 0;
        char word[32];
        if (line_no == 1) {
            if (sscanf(line, "attune-weights %lld", &a) != 1 || a != 2) BAD("%s is not an Attune weights manifest (version 2); compile again", path);
        } else if (sscanf(line, "graph %llx", &hash) == 1) {
            if (hash != graph_hash) BAD("%s: the weights manifest belongs to another graph (hash %016llx, this module is %016llx): compile again", path, hash, (unsigned long long)graph_hash);
        } else if (sscanf(line, "slots %lld", &a) == 1) {
            declared_slots = a;
            if (a != n_slots) BAD("%s: %lld weight slots, this module has %lld: compile again", path, a, (long long)n_slots);
        } else if (sscanf(line, "nonfinite %31s", word) == 1) {
            allow_nonfinite = strcmp(word, "allow") == 0;
        } else if (sscanf(line, "file %lld %lld %31s %n", &a, &b, word, &skip) == 3 && skip > 0) {
            if (a != w->n_files || b < 0) { BAD("%s line %lld: bad file entry", path, (long long)line_no); break; }
            if (w->n_files == files_cap) {
                files_cap = files_cap ? files_cap * 2 : 8;
                mapped_file *grown = realloc(w->files, sizeof *grown * (size_t)files_cap);
                if (!grown) { BAD("out of memory"); break; }
                w->files = grown;
            }
            mapped_file *f = &w->files[w->n_files];
            memset(f, 0, sizeof *f);
            char *name = rest_of(line, skip);
            if (name && name[0] != '/') {
                char *full = malloc(strlen(dir) + strlen(name) + 1);
                if (full) { strcpy(full, dir); strcat(full, name); }
                free(name);
                name = full;
            }
            f->path = name;
            w->n_files++;
            if (!name) { BAD("out of memory"); break; }
            if (map_file(f, word, error, error_size, b)) ok = 0;
        } else if (sscanf(line, "slot %lld %lld %lld %31s", &a, &b, &c, word) == 4) {
            if (a < 0 || a >= n_slots || a != current_slot + 1) { BAD("%s line %lld: slot %lld out of order", path, (long long)line_no, a); break; }
            if (b != slot_elements[a]) { BAD("%s: slot %lld holds %lld elements, this module needs %lld: compile again", path, a, b, (long long)slot_elements[a]); break; }
            if (strcmp(word, slot_formats[a]) != 0) { BAD("%s: slot %lld is %s, this module reads it as %s: compile again", path, a, word, slot_formats[a]); break; }
            if (strcmp(word, "f32") == 0) slot_format[a] = DT_F32;
            else if (strcmp(word, "bf16") == 0) slot_format[a] = DT_BF16;
            else if (parse_q8(word, &q8_bits, &q8_group, &q8_scale_bytes)) slot_format[a] = DT_Q8;
            else { BAD("%s: slot %lld has format %s; this loader builds f32, bf16, int8_g<N>_<f16|f32> and q4_g<N>_<f16|f32> slots", path, a, word); break; }
            current_slot = a;
            slot_first[a] = w->n_parts;
            slot_parts[a] = c;
        } else if (sscanf(line, "part %lld %lld %31s %lld %n", &a, &b, word, &d, &skip) == 4 && skip > 0) {
            if (current_slot < 0) { BAD("%s line %lld: part before any slot", path, (long long)line_no); break; }
            if (w->n_parts == parts_cap) {
                parts_cap = parts_cap ? parts_cap * 2 : 64;
                part *grown = realloc(w->parts, sizeof *grown * (size_t)parts_cap);
                if (!grown) { BAD("out of memory"); break; }
                w->parts = grown;
            }
            part *p = &w->parts[w->n_parts++];
            memset(p, 0, sizeof *p);
            p->name = rest_of(line, skip);
            p->file = a; p->offset = b; p->count = d; p->bad = -1;
            if (strcmp(word, "f32") == 0) p->dtype = DT_F32;
            else if (strcmp(word, "bf16") == 0) p->dtype = DT_BF16;
            else if (strcmp(word, "f16") == 0) p->dtype = DT_F16;
            else if (parse_q8(word, &p->q8_bits, &p->q8_group, &p->q8_scale_bytes)) p->dtype = DT_Q8;
            else { BAD("%s: tensor '%s' has dtype %s; weights are f32, bf16, f16, int8_g<N>_<f16|f32> or q4_g<N>_<f16|f32>", path, p->name, word); break; }
            if (a < 0 || a >= w->n_files || b < 0 || d < 0 || (p->dtype == DT_Q8 && d % p->q8_group) ||
                (uint64_t)b + part_bytes(p) > (uint64_t)w->files[a].size)
                BAD("%s: tensor '%s' lies outside %s", path, p->name, a >= 0 && a < w->n_files ? w->files[a].path : "any file");
        } else {
            BAD("%s line %lld: cannot read '%.40s'", path, (long long)line_no, line);
        }
    }
    free(line);
    fclose(in);
    if (ok && declared_slots != n_slots) BAD("%s: no 'slots' line; not a complete weights manifest", path);
    if (ok && current_slot != n_slots - 1) BAD("%s: %lld of %lld weight slots listed", path, (long long)(current_slot + 1), (long long)n_slots);

    /* Decide each slot's storage: into the mapping (one part stored in the slot's format,
       aligned to its element size), or materialised in that format (at a 64-byte aligned
       offset of one region, sized in a first pass). */
    size_t region = 0;
    for (int pass = 0; pass < 2 && ok; pass++) {
        if (pass == 1 && region > 0) {
            w->owned_bytes = region;
            w->owned = materialised_region(region);
            if (!w->owned) { BAD("out of memory for %zu MiB of converted weights", region >> 20); break; }
        }
        size_t at_byte = 0;
        for (int64_t s = 0; ok && s < n_slots; s++) {
            part *first = &w->parts[slot_first[s]];
            const enum dtype format = slot_format[s];
            int64_t total = 0;
            for (int64_t k = 0; k < slot_parts[s]; k++) total += first[k].count;
            if (slot_first[s] + slot_parts[s] > w->n_parts || total != slot_elements[s]) { BAD("%s: slot %lld's parts hold %lld elements, not %lld", path, (long long)s, (long long)total, (long long)slot_elements[s]); break; }
            if (format == DT_Q8) {
                /* Quantised at compile time, never at open: the one part must be in the
                   slot's own layout. */
                if (!parse_q8(slot_formats[s], &q8_bits, &q8_group, &q8_scale_bytes) || slot_parts[s] != 1 || first->dtype != DT_Q8 ||
                    first->q8_bits != q8_bits || first->q8_group != q8_group || first->q8_scale_bytes != q8_scale_bytes) {
                    BAD("%s: slot %lld is %s but its weights are not stored in that layout: compile again", path, (long long)s, slot_formats[s]);
                    break;
                }
                slots[s] = w->files[first->file].map + first->offset;
                continue;
            }
            for (int64_t k = 0; ok && k < slot_parts[s]; k++)
                if (first[k].dtype == DT_Q8) BAD("%s: slot %lld is %s but tensor '%s' is stored quantised: compile again", path, (long long)s, slot_formats[s], first[k].name);
            if (!ok) break;
            if (slot_parts[s] == 1 && first->dtype == format && first->offset % (int64_t)dtype_size(format) == 0) {
                slots[s] = w->files[first->file].map + first->offset;
                continue;
            }
            const size_t bytes = ((size_t)total * dtype_size(format) + 63) / 64 * 64;
            if (pass == 0) { region += bytes; continue; }
            unsigned char *buf = (unsigned char *)w->owned + at_byte;
            at_byte += bytes;
            slots[s] = buf;
            int64_t at = 0;
            for (int64_t k = 0; k < slot_parts[s]; k++) {
                first[k].dst = buf + (size_t)at * dtype_size(format);
                first[k].dst_format = format;
                at += first[k].count;
            }
        }
    }

    if (ok) populate_parts(w);

    /* Convert and scan in parallel, in chunks of 1 Mi elements (int8 parts hold no
       non-finite values: the quantiser refused them, and their file is checksummed). */
    job *jobs = NULL;
    int64_t n_jobs = 0;
    if (ok) {
        const int64_t chunk = 1 << 20;
        for (int64_t p = 0; p < w->n_parts; p++)
            if (w->parts[p].dtype != DT_Q8) n_jobs += (w->parts[p].count + chunk - 1) / chunk;
        jobs = malloc(sizeof *jobs * (size_t)(n_jobs > 0 ? n_jobs : 1));
        if (!jobs) BAD("out of memory");
        int64_t j = 0;
        for (int64_t p = 0; ok && p < w->n_parts; p++)
            for (int64_t e = 0; w->parts[p].dtype != DT_Q8 && e < w->parts[p].count; e += chunk)
                jobs[j++] = (job){p, e, w->parts[p].count - e < chunk ? w->parts[p].count - e : chunk};
    }
    if (ok) {
        const long page = sysconf(_SC_PAGESIZE);
#ifdef _OPENMP
#pragma omp parallel for schedule(static, 1)
#endif
        for (int64_t j = 0; j < n_jobs; j++) {
            part *p = &w->parts[jobs[j].p];
            const unsigned char *src = w->files[p->file].map + p->offset;
            int64_t bad;
            if (!p->dst && allow_nonfinite) continue;      /* mapped in place and nothing to check */
            if (!p->dst) {
                bad = process(src, p->dtype, NULL, jobs[j].first, jobs[j].n);
            } else if (p->dst_format == DT_BF16) {
                bad = process_bf16(src, p->dtype, p->dst, jobs[j].first, jobs[j].n);
            } else if (p->dtype == DT_F32 && p->offset % 4 != 0) {
                /* unaligned f32: copy first, then scan the aligned copy */
                float *dst = p->dst;
                memcpy(dst + jobs[j].first, src + 4 * jobs[j].first, sizeof(float) * (size_t)jobs[j].n);
                bad = process((const unsigned char *)dst, DT_F32, NULL, jobs[j].first, jobs[j].n);
            } else {
                bad = process(src, p->dtype, p->dst, jobs[j].first, jobs[j].n);
            }
            if (p->dst) {
                /* The source pages were read once; drop them from this process (the page
                   cache keeps them) so resident memory counts the weights once. */
                uintptr_t lo = (uintptr_t)(src + dtype_size(p->dtype) * (size_t)jobs[j].first);
                uintptr_t hi = lo + dtype_size(p->dtype) * (size_t)jobs[j].n;
                lo = (lo + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
                hi = hi / (uintptr_t)page * (uintptr_t)page;
                if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
            }
            if (bad >= 0) {
#ifdef _OPENMP
#pragma omp critical(attune_weights_bad)
#endif
                if (p->bad < 0 || bad < p->bad) p->bad = bad;
            }
        }
    }
    free(jobs);
    for (int64_t p = 0; ok && !allow_nonfinite && p < w->n_parts; p++) {
        const part *q = &w->parts[p];
        if (q->bad < 0) continue;
        const float v = element(w->files[q->file].map + q->offset, q->dtype, q->bad);
        BAD("weight '%s' holds %s at element %lld of %lld (%s): the checkpoint is damaged; pass --allow-nonfinite to load it anyway",
            q->name, v != v ? "NaN" : v > 0 ? "+Inf" : "-Inf", (long long)q->bad, (long long)q->count, dtype_name(q->dtype));
    }
#undef BAD
    if (ok) release_copied_files(w);
    free(slot_first);
    free(slot_parts);
    free(slot_format);
    free(dir);
    if (!ok) { attune_weights_close(w); return NULL; }
    return w;
}
