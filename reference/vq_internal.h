/* Internal to the VQ family: the reference's k-means hooks (the cpu backend falls back on their
 * sums), the distance of vq.h's definition, and the GEMV reference of the hybrid codecs. The
 * k-means driver itself: common/kmeans.h. */
#ifndef TENPAK_REFERENCE_VQ_INTERNAL_H
#define TENPAK_REFERENCE_VQ_INTERNAL_H

#include "common/kmeans.h"
#include "tenpak/vq.h"

extern const tp_kmeans_hooks tp_kmeans_hooks_ref;

float tp_vq_dist_ref(const float *x, const float *c, int d);
/* The GEMV reference of the hybrid codecs (vq+int4, tenpakx), defined by their decoding: W decoded
 * by decode(m, W) into a rows x cols scratch, then y = W x accumulated in double. TP_ERR_NOMEM when
 * the scratch (or decode's) cannot be allocated. */
tp_status tp_gemv_decoded_ref(tp_status (*decode)(const void *m, float *W), const void *m, int64_t rows,
                              int64_t cols, const float *x, float *y);

#endif
