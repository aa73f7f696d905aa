//! The icon: a disc in the state's colour with a darker rim, drawn as
//! ARGB32 (big-endian, as StatusNotifierItem wants) at the sizes panels
//! ask for, and the icon-theme names of the same four states.

use crate::model::Colour;

/// The sizes drawn, in pixels.
pub const SIZES: [u32; 6] = [16, 22, 24, 32, 48, 64];

/// The state's fill colour, RGB.
pub fn rgb(colour: Colour) -> [u8; 3] {
    match colour {
        Colour::Green => [0x2e, 0xa0, 0x43],
        Colour::Amber => [0xf0, 0xa0, 0x20],
        Colour::Red => [0xd7, 0x26, 0x26],
        Colour::Grey => [0x9a, 0x9a, 0x9a],
    }
}

/// The icon-theme name for hosts that prefer names to pixmaps; the
/// package installs these in the hicolor theme.
pub fn theme_name(colour: Colour) -> String {
    format!("fail2ban-healthd-{}", colour.word())
}

/// One square image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixmap {
    /// Width and height.
    pub size: u32,
    /// ARGB32, big-endian, row by row.
    pub argb: Vec<u8>,
}

/// The icon at `size` pixels.
pub fn draw(colour: Colour, size: u32) -> Pixmap {
    let [r, g, b] = rgb(colour);
    let rim = [r / 2, g / 2, b / 2];
    let n = f64::from(size);
    let centre = n / 2.0;
    let radius = n / 2.0 - 0.5;
    let rim_width = (n / 12.0).max(1.0);
    let mut argb = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            // Coverage by 4x4 supersampling, for a smooth edge.
            let (mut inside, mut on_rim) = (0u32, 0u32);
            for sy in 0..4 {
                for sx in 0..4 {
                    let px = f64::from(x) + (f64::from(sx) + 0.5) / 4.0 - centre;
                    let py = f64::from(y) + (f64::from(sy) + 0.5) / 4.0 - centre;
                    let d = (px * px + py * py).sqrt();
                    if d <= radius {
                        inside += 1;
                        if d > radius - rim_width {
                            on_rim += 1;
                        }
                    }
                }
            }
            let alpha = u8::try_from(inside * 255 / 16).unwrap_or(u8::MAX);
            let [cr, cg, cb] = if on_rim * 2 > inside { rim } else { [r, g, b] };
            argb.extend_from_slice(&[alpha, cr, cg, cb]);
        }
    }
    Pixmap { size, argb }
}

/// The icon at every size in [`SIZES`].
pub fn all(colour: Colour) -> Vec<Pixmap> {
    SIZES.iter().map(|&s| draw(colour, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_is_an_opaque_disc_of_the_state_colour_with_a_clear_corner() {
        for colour in [Colour::Green, Colour::Amber, Colour::Red, Colour::Grey] {
            for p in all(colour) {
                let s = p.size as usize;
                assert_eq!(p.argb.len(), s * s * 4);
                let at = |x: usize, y: usize| &p.argb[(y * s + x) * 4..(y * s + x) * 4 + 4];
                let [r, g, b] = rgb(colour);
                assert_eq!(at(s / 2, s / 2), [255, r, g, b], "{colour:?} {s}");
                assert_eq!(at(0, 0)[0], 0, "{colour:?} {s}: the corner is transparent");
            }
        }
    }

    #[test]
    fn the_four_states_differ_in_colour_and_name() {
        let all = [Colour::Green, Colour::Amber, Colour::Red, Colour::Grey];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(rgb(*a), rgb(*b));
                assert_ne!(theme_name(*a), theme_name(*b));
            }
        }
        assert_eq!(theme_name(Colour::Red), "fail2ban-healthd-error");
    }
}
