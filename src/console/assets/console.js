// wabot console: confirmation before destructive forms. Loaded from the console's own
// origin (the CSP allows no inline script).
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
