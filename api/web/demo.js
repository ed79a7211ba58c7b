// The demo page's customer picker reloads at once (the submit button stays for keyboard and no-JS use).
document.getElementById("customer").addEventListener("change", (e) => e.target.form.submit());
