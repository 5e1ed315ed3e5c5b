// The demo shop's catalogue and its product drawings (inline SVG, coloured through --c).

export const CURRENCY = "USD";

export const PRODUCTS = [
  {
    id: "trail-runner-2",
    name: "Trail Runner 2",
    category: "Footwear",
    price: 129,
    art: "shoe",
    blurb: "A light, grippy trail shoe with a rock plate and a 6 mm drop. Built for long days on rough ground.",
    sizes: ["EU 38", "EU 39", "EU 40", "EU 41", "EU 42", "EU 43", "EU 44", "EU 45", "EU 46"],
    colours: [
      { name: "Slate", hex: "#475569", stock: 12 },
      { name: "Ember", hex: "#ea580c", stock: 3 },
      { name: "Moss", hex: "#4d7c0f", stock: 0 },
    ],
  },
  {
    id: "aurora-jacket",
    name: "Aurora Jacket",
    category: "Outerwear",
    price: 249,
    art: "jacket",
    blurb: "Three-layer waterproof shell with pit zips and a helmet-ready hood. Packs into its own pocket.",
    sizes: ["XS", "S", "M", "L", "XL"],
    colours: [
      { name: "Glacier", hex: "#0284c7", stock: 8 },
      { name: "Midnight", hex: "#1e293b", stock: 21 },
      { name: "Rosehip", hex: "#be123c", stock: 2 },
    ],
  },
  {
    id: "summit-pack-28",
    name: "Summit Pack 28",
    category: "Packs",
    price: 159,
    art: "pack",
    blurb: "A 28 litre day pack with a ventilated back panel, hip-belt pockets and a hydration sleeve.",
    sizes: ["One size"],
    colours: [
      { name: "Olive", hex: "#4d5a2a", stock: 6 },
      { name: "Sand", hex: "#c2a878", stock: 14 },
      { name: "Carbon", hex: "#27272a", stock: 0 },
    ],
  },
  {
    id: "ridge-beanie",
    name: "Ridge Beanie",
    category: "Accessories",
    price: 29,
    art: "beanie",
    blurb: "Soft merino-blend rib knit with a fold-over cuff. Warm, breathable and not itchy.",
    sizes: ["One size"],
    colours: [
      { name: "Mustard", hex: "#ca8a04", stock: 30 },
      { name: "Teal", hex: "#0f766e", stock: 17 },
      { name: "Oat", hex: "#d6cbb5", stock: 9 },
    ],
  },
  {
    id: "canyon-bottle",
    name: "Canyon Bottle 750 ml",
    category: "Accessories",
    price: 35,
    art: "bottle",
    blurb: "Double-wall insulated steel: cold for 24 hours, hot for 12. Leak-proof loop cap.",
    sizes: ["750 ml"],
    colours: [
      { name: "Lagoon", hex: "#0891b2", stock: 40 },
      { name: "Clay", hex: "#c2410c", stock: 12 },
      { name: "Snow", hex: "#e2e8f0", stock: 5 },
    ],
  },
  {
    id: "drift-socks",
    name: "Drift Merino Socks (3 pairs)",
    category: "Accessories",
    price: 39,
    art: "socks",
    blurb: "Cushioned merino hiking socks with a seamless toe. Three pairs per pack.",
    sizes: ["S (36–38)", "M (39–42)", "L (43–46)"],
    colours: [
      { name: "Heather", hex: "#6b7280", stock: 25 },
      { name: "Berry", hex: "#9d174d", stock: 11 },
    ],
  },
];

export const byId = (id) => PRODUCTS.find((p) => p.id === id);

export function money(value) {
  return new Intl.NumberFormat("en-US", { style: "currency", currency: CURRENCY }).format(value);
}

// Drawings: `.c` takes the product colour, `.d` a darker shade, `.l` a lighter one (shop.css).
const ART = {
  shoe: `
    <ellipse class="shadow" cx="100" cy="118" rx="78" ry="7"/>
    <path class="sole" d="M22 98c0-6 4-9 10-9h120c14 0 26 6 26 15v4c0 5-4 8-9 8H34c-7 0-12-5-12-11Z"/>
    <path class="c" d="M28 92c2-16 8-30 18-40 6-6 14-6 20 0l8 8c6 6 16 8 26 8h14c18 0 40 8 52 20 6 6 8 12 8 16H28Z"/>
    <path class="d" d="M28 92c2-16 8-30 18-40 4-4 9-5 14-3-8 10-13 26-14 43Z"/>
    <path class="l" d="M92 72c14 2 28 4 44 12 6 3 10 6 14 8H98c-4-6-6-13-6-20Z" opacity=".35"/>
    <path class="lace" d="M70 60l10 10M78 56l10 10M86 53l10 10"/>
    <path class="stripe" d="M60 88c20-2 48-10 70-4"/>`,
  jacket: `
    <ellipse class="shadow" cx="100" cy="124" rx="64" ry="6"/>
    <path class="d" d="M62 27 30 46l-8 60c0 4 3 6 6 6h16L58 62Z"/>
    <path class="d" d="M138 27l32 19 8 60c0 4-3 6-6 6h-16L142 62Z"/>
    <path class="c" d="M58 26h84l6 90c0 4-3 6-6 6H58c-3 0-6-2-6-6Z"/>
    <path class="d" d="M76 18c6-6 42-6 48 0l4 14c-10 8-46 8-56 0Z"/>
    <path class="zip" d="M100 32v88"/>
    <path class="l" d="M64 78h22v16H64zM114 78h22v16h-22z" opacity=".45"/>
    <path class="stripe" d="M54 58h92"/>`,
  pack: `
    <ellipse class="shadow" cx="100" cy="124" rx="56" ry="6"/>
    <path class="d" d="M84 18c0-6 32-6 32 0v8H84Z"/>
    <rect class="c" x="52" y="24" width="96" height="96" rx="22"/>
    <path class="d" d="M52 54c0-14 10-26 24-28h48c14 2 24 14 24 28v4H52Z"/>
    <rect class="l" x="66" y="74" width="68" height="36" rx="10" opacity=".55"/>
    <path class="zip" d="M70 86h60"/>
    <circle class="buckle" cx="100" cy="58" r="4"/>`,
  beanie: `
    <ellipse class="shadow" cx="100" cy="122" rx="58" ry="6"/>
    <circle class="l" cx="100" cy="26" r="14"/>
    <path class="c" d="M42 92c0-34 26-58 58-58s58 24 58 58Z"/>
    <path class="rib" d="M62 50v40M76 42v48M90 38v52M104 37v53M118 39v51M132 44v46M146 54v36"/>
    <rect class="d" x="36" y="86" width="128" height="30" rx="8"/>
    <path class="rib" d="M50 90v22M64 90v22M78 90v22M92 90v22M106 90v22M120 90v22M134 90v22M148 90v22"/>`,
  bottle: `
    <ellipse class="shadow" cx="100" cy="126" rx="34" ry="5"/>
    <rect class="d" x="84" y="8" width="32" height="18" rx="6"/>
    <path class="cap" d="M92 8c0-6 16-6 16 0"/>
    <path class="c" d="M78 36c0-8 8-12 22-12s22 4 22 12v80c0 6-4 8-8 8H86c-4 0-8-2-8-8Z"/>
    <rect class="l" x="86" y="48" width="8" height="64" rx="4" opacity=".5"/>
    <path class="stripe" d="M78 96h44"/>`,
  socks: `
    <ellipse class="shadow" cx="100" cy="124" rx="62" ry="6"/>
    <path class="d" d="M104 14h34v62c0 10 6 16 16 24 10 8 6 24-8 24-10 0-20-6-30-16l-12-12Z"/>
    <path class="c" d="M62 14h34v62c0 10 6 16 16 24 10 8 6 24-8 24-10 0-20-6-30-16L62 96Z"/>
    <rect class="l" x="62" y="14" width="34" height="14" opacity=".6"/>
    <path class="rib" d="M70 14v14M79 14v14M88 14v14"/>
    <path class="l" d="M90 108c6 6 10 8 14 8 6 0 8-4 6-8" opacity=".55"/>`,
};

/** An <svg> string for a product (trusted constant markup, no user data). */
export function artSvg(product, label = product.name) {
  return `<svg class="art" viewBox="0 0 200 140" role="img" aria-label="${label.replace(/"/g, "")}">${ART[product.art]}</svg>`;
}
