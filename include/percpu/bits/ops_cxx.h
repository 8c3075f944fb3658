/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/ops_cxx.h - the this-CPU operations of <percpu/ops.h> for
 * C++: the same names, as function templates over the supported integer
 * types (C has _Generic for that).  Machinery, not API.
 */
#ifndef PERCPU_BITS_OPS_CXX_H
#define PERCPU_BITS_OPS_CXX_H
#ifndef PERCPU_H
#error "<percpu/bits/ops_cxx.h> is not for direct inclusion: #include <percpu.h>"
#endif

extern "C++" {
/* Supported object types (cv-qualifiers ignored); others have no
 * definition and fail to compile, and bool has only the operations that
 * make sense for it. */
template <class T> struct pcpu__int;
template <class T> struct pcpu__int<const T> : pcpu__int<T> {};
template <class T> struct pcpu__int<volatile T> : pcpu__int<T> {};
template <class T> struct pcpu__int<const volatile T> : pcpu__int<T> {};
#define PCPU__CXX_BITS(T, name)                                                 \
        static T read(const void *c) { return pcpu__this_read_##name(c); }      \
        static void write(const void *c, T v) { pcpu__this_write_##name(c, v); } \
        static T xchg(const void *c, T v) { return pcpu__this_xchg_##name(c, v); } \
        static void and_(const void *c, T v) { pcpu__this_and_##name(c, v); }   \
        static void or_(const void *c, T v) { pcpu__this_or_##name(c, v); }     \
        static T cmpxchg(const void *c, T o, T n)                               \
        { return pcpu__this_cmpxchg_##name(c, o, n); }                          \
        static bool try_cmpxchg(const void *c, T *o, T n)                       \
        { return pcpu__this_try_cmpxchg_##name(c, o, n); }
#define PCPU__CXX_ARITH(T, name)                                                \
        static void add(const void *c, T v) { pcpu__this_add_##name(c, v); }    \
        static void sub(const void *c, T v) { pcpu__this_sub_##name(c, v); }    \
        static void inc(const void *c) { pcpu__this_inc_##name(c); }            \
        static void dec(const void *c) { pcpu__this_dec_##name(c); }            \
        static T add_return(const void *c, T v)                                 \
        { return pcpu__this_add_return_##name(c, v); }                          \
        static T sub_return(const void *c, T v)                                 \
        { return pcpu__this_sub_return_##name(c, v); }                          \
        static T inc_return(const void *c) { return pcpu__this_inc_return_##name(c); } \
        static T dec_return(const void *c) { return pcpu__this_dec_return_##name(c); } \
        static T sum(const void *c) { return pcpu__sum_##name(c); }
#define PCPU__CXX_INT(T, name)                                                  \
    template <> struct pcpu__int<T> {                                           \
        typedef T type;                                                         \
        PCPU__CXX_BITS(T, name)                                                 \
        PCPU__CXX_ARITH(T, name)                                                \
    };
template <> struct pcpu__int<bool> {
    typedef bool type;
    PCPU__CXX_BITS(bool, bool)
};
PCPU__CXX_INT(char, char)
PCPU__CXX_INT(signed char, schar)
PCPU__CXX_INT(unsigned char, uchar)
PCPU__CXX_INT(short, short)
PCPU__CXX_INT(unsigned short, ushort)
PCPU__CXX_INT(int, int)
PCPU__CXX_INT(unsigned int, uint)
PCPU__CXX_INT(long, long)
PCPU__CXX_INT(unsigned long, ulong)
PCPU__CXX_INT(long long, llong)
PCPU__CXX_INT(unsigned long long, ullong)
#undef PCPU__CXX_INT
#undef PCPU__CXX_BITS
#undef PCPU__CXX_ARITH

/* As the C macros above; the value arguments are converted to the
 * object's type (they take no part in deduction). */
template <class T> inline void pcpu_this_add(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::add(c, v); }
template <class T> inline void pcpu_this_sub(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::sub(c, v); }
template <class T> inline void pcpu_this_inc(T *c) { pcpu__int<T>::inc(c); }
template <class T> inline void pcpu_this_dec(T *c) { pcpu__int<T>::dec(c); }
template <class T> inline typename pcpu__int<T>::type pcpu_this_read(T *c)
{ return pcpu__int<T>::read(c); }
template <class T> inline void pcpu_this_write(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::write(c, v); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_xchg(T *c, typename pcpu__int<T>::type v)
{ return pcpu__int<T>::xchg(c, v); }
template <class T> inline void pcpu_this_and(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::and_(c, v); }
template <class T> inline void pcpu_this_or(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::or_(c, v); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_cmpxchg(T *c, typename pcpu__int<T>::type o,
                                                     typename pcpu__int<T>::type n)
{ return pcpu__int<T>::cmpxchg(c, o, n); }
template <class T>
inline bool pcpu_this_try_cmpxchg(T *c, typename pcpu__int<T>::type *o,
                                  typename pcpu__int<T>::type n)
{ return pcpu__int<T>::try_cmpxchg(c, o, n); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_add_return(T *c, typename pcpu__int<T>::type v)
{ return pcpu__int<T>::add_return(c, v); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_sub_return(T *c, typename pcpu__int<T>::type v)
{ return pcpu__int<T>::sub_return(c, v); }
template <class T> inline typename pcpu__int<T>::type pcpu_this_inc_return(T *c)
{ return pcpu__int<T>::inc_return(c); }
template <class T> inline typename pcpu__int<T>::type pcpu_this_dec_return(T *c)
{ return pcpu__int<T>::dec_return(c); }
template <class T> inline typename pcpu__int<T>::type pcpu_sum(T *c)
{ return pcpu__int<T>::sum(c); }
} /* extern "C++" */

#endif /* PERCPU_BITS_OPS_CXX_H */
