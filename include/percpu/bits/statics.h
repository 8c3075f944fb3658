/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/statics.h - how PCPU_DEFINE variables reach the library:
 * each module (the program, each shared library) registers its section of
 * templates from a constructor.  Machinery, not API.
 */
#ifndef PERCPU_BITS_STATICS_H
#define PERCPU_BITS_STATICS_H
#ifndef PERCPU_H
#error "<percpu/bits/statics.h> is not for direct inclusion: #include <percpu.h>"
#endif

#define PCPU__SECTION_NAME "pcpu_data"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One per module that has PCPU_DEFINE variables.  The library places the
 * module's section of templates and takes it back when the module is
 * unloaded.  (The module's rseq descriptors need nothing from the library
 * at unload: see PCPU_DISARM_AFTER_SEQ.)
 */
struct pcpu__module {
    char *start;                 /* the module's template section         */
    char *stop;
    intptr_t *delta;             /* set to (copy - template) when placed  */
    /* owned by the library */
    struct pcpu__module *next;
    void *cookie;                /* where the section lives now           */
    void *stale_cookie;          /* where it lived before pcpu_exit()     */
    int placed;
};

PCPU__PUBLIC void pcpu__module_register(struct pcpu__module *mod);
PCPU__PUBLIC void pcpu__module_unregister(struct pcpu__module *mod);

extern char __start_pcpu_data[] __attribute__((weak, visibility("hidden")));
extern char __stop_pcpu_data[] __attribute__((weak, visibility("hidden")));
__attribute__((weak, visibility("hidden"))) intptr_t pcpu__module_delta;
__attribute__((weak, visibility("hidden"))) struct pcpu__module pcpu__this_module = {
    __start_pcpu_data, __stop_pcpu_data, &pcpu__module_delta, 0, 0, 0, 0};

/* Every file that includes <percpu.h> registers its module (registering
 * twice is harmless); modules without variables skip it.  The destructor
 * runs on dlclose() and at exit. */
__attribute__((constructor, used)) static void pcpu__module_ctor(void)
{
    if (pcpu__this_module.start != pcpu__this_module.stop)
        pcpu__module_register(&pcpu__this_module);
}
__attribute__((destructor, used)) static void pcpu__module_dtor(void)
{
    if (pcpu__this_module.start != pcpu__this_module.stop)
        pcpu__module_unregister(&pcpu__this_module);
}

#ifdef __cplusplus
} /* extern "C" */
/* The type named by a macro argument, also for array types (int[4]). */
template <class T> struct pcpu__type_identity {
    typedef T type;
};
#define PCPU__TYPEOF(T_) pcpu__type_identity<T_>::type
#else
#define PCPU__TYPEOF(T_) __typeof__(T_)
#endif

#endif /* PERCPU_BITS_STATICS_H */
