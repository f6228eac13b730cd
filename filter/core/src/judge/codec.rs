//! Reading and writing the judge's state as bytes, for proxy-wasm shared
//! data: fixed-size little-endian words. Each state lists its fields once,
//! against [`Codec`], and that one list both encodes and decodes, so the two
//! cannot drift apart.

/// Reads or writes one field at a time; `None` stops at a short input.
pub(crate) trait Codec {
    fn u64(&mut self, v: &mut u64) -> Option<()>;

    fn f64(&mut self, v: &mut f64) -> Option<()> {
        let mut bits = v.to_bits();
        self.u64(&mut bits)?;
        *v = f64::from_bits(bits);
        Some(())
    }

    fn f64s(&mut self, vs: &mut [f64]) -> Option<()> {
        vs.iter_mut().try_for_each(|v| self.f64(v))
    }

    fn u64s(&mut self, vs: &mut [u64]) -> Option<()> {
        vs.iter_mut().try_for_each(|v| self.u64(v))
    }
}

pub(crate) struct Writer<'a>(pub &'a mut Vec<u8>);

impl Codec for Writer<'_> {
    fn u64(&mut self, v: &mut u64) -> Option<()> {
        self.0.extend_from_slice(&v.to_le_bytes());
        Some(())
    }
}

pub(crate) struct Reader<'a>(pub &'a [u8]);

impl Codec for Reader<'_> {
    fn u64(&mut self, v: &mut u64) -> Option<()> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        *v = u64::from_le_bytes(*head);
        self.0 = rest;
        Some(())
    }
}
